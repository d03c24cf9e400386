// dumb_multithreaded -- a kernel thread per connection, blocking I/O.
//
// The accepting thread spawns a detached thread per connection, which runs
// the blocking loop (blocking_connection.h) and exits with it.  Each thread
// gets an 8 MiB stack (16 MiB in sanitizer builds), not glibc's default that
// follows `ulimit -s`: BURN 10000 recurses 10000 levels of ~272-288 bytes,
// ~2.8 MB, on the connection's own thread, and a smaller or platform-
// dependent stack would crash the whole process on one request.  Only the
// pages touched are committed, so an idle connection costs its thread's
// kernel structures plus a few KiB of stack, but address space is reserved
// per thread: 1000 connections reserve 8 GiB of virtual memory.
//
// Stop: `active` counts live connection threads; serve() returns when it
// drops to zero (idle threads are woken by the stop protocol's shutdown of
// their socket).  Breaks at: thread creation cost per connection (~10-20 us)
// and memory/scheduler pressure beyond a few thousand connections.

#include <condition_variable>
#include <mutex>

#include "dumb/blocking_connection.h"

namespace {

void serve(common::ServerContext& ctx) {
  std::mutex mutex;
  std::condition_variable all_done;
  int active = 0;  // connection threads alive (guarded by mutex)
  for (;;) {
    int fd = ctx.accept_connection(/*nonblocking=*/false);
    if (fd < 0) {
      if (ctx.stopping()) break;
      continue;  // out of descriptors: one connection was refused
    }
    {
      std::lock_guard lock(mutex);
      ++active;
    }
    common::BigStackThread([&ctx, &mutex, &all_done, &active, fd] {
      dumb::serve_blocking_connection(ctx, fd);
      std::lock_guard lock(mutex);  // notify under the lock: serve()'s frame outlives the notify
      if (--active == 0) all_done.notify_all();
    }).detach();
  }
  std::unique_lock lock(mutex);
  all_done.wait(lock, [&] { return active == 0; });
}

}  // namespace

int main(int argc, char** argv) { return common::server_main(argc, argv, "dumb_multithreaded", serve); }
