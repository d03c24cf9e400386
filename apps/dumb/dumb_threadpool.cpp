// dumb_threadpool -- a fixed pool of threads fed by a bounded queue of
// accepted connections.
//
// The accepting thread pushes each new connection on the queue; a worker
// (8 MiB stack, for BURN) pops one and serves it to the end with the
// blocking loop (blocking_connection.h), then pops the next.  So at most
// --workers connections are served at once; the next kQueueCapacity wait in
// the queue, unserved, and a connection arriving when the queue is full is
// refused at once: accepted, told kServerBusy and closed, so the client knows
// instead of hanging in a listen backlog with no idea when it will be served.
// Threads are created once, not per connection, and memory is bounded by
// workers + capacity.  Breaks at: more simultaneous long-lived connections
// (WAIT, slow readers) than workers -- the rest wait in the queue, starved,
// exactly like the iterative server.
//
// Lock rule: `mutex` guards `queue` and `closed`; `ready` is signalled when
// either changes.  Stop: the accepter closes the queue; workers finish their
// connection, and the connections still queued are closed unserved.

#include <condition_variable>
#include <deque>
#include <mutex>
#include <optional>
#include <vector>

#include <sys/socket.h>
#include <unistd.h>

#include "dumb/blocking_connection.h"
#include "dumb/protocol.h"

namespace {

constexpr std::size_t kQueueCapacity = 64;

class ConnectionQueue {
 public:
  // False if the queue is full or closed: the caller refuses the connection.
  bool try_push(int fd) {
    {
      std::lock_guard lock(mutex_);
      if (closed_ || queue_.size() == kQueueCapacity) return false;
      queue_.push_back(fd);
    }
    ready_.notify_one();
    return true;
  }

  // Blocks until a connection is queued; nullopt once closed.
  std::optional<int> pop() {
    std::unique_lock lock(mutex_);
    ready_.wait(lock, [&] { return closed_ || !queue_.empty(); });
    if (closed_) return std::nullopt;
    int fd = queue_.front();
    queue_.pop_front();
    return fd;
  }

  // Wakes every worker; returns the connections that were still waiting.
  std::deque<int> close() {
    std::deque<int> unserved;
    {
      std::lock_guard lock(mutex_);
      closed_ = true;
      unserved.swap(queue_);
    }
    ready_.notify_all();
    return unserved;
  }

 private:
  std::mutex mutex_;
  std::condition_variable ready_;  // signalled on push and on close
  std::deque<int> queue_;          // accepted, not yet served (guarded by mutex_)
  bool closed_ = false;            // guarded by mutex_
};

void serve(common::ServerContext& ctx) {
  ConnectionQueue queue;
  std::vector<common::BigStackThread> workers;
  for (int i = 0; i < ctx.config().workers; ++i)
    workers.emplace_back([&] {
      while (auto fd = queue.pop()) dumb::serve_blocking_connection(ctx, *fd);
    });
  for (;;) {
    int fd = ctx.accept_connection(/*nonblocking=*/false);
    if (fd >= 0) {
      if (!queue.try_push(fd)) {  // full: refuse, saying why
        (void)send(fd, dumb::kServerBusy.data(), dumb::kServerBusy.size(), MSG_DONTWAIT | MSG_NOSIGNAL);
        close(fd);
      }
    } else if (ctx.stopping()) {
      break;
    }
  }
  for (int fd : queue.close()) close(fd);
  for (auto& worker : workers) worker.join();
}

}  // namespace

int main(int argc, char** argv) {
  return common::server_main(argc, argv, "dumb_threadpool", serve, {8, "pool threads"});
}
