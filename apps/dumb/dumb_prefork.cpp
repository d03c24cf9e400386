// dumb_prefork -- pre-forked worker processes sharing the listener (the
// classic Apache prefork model).
//
// The parent binds the listener, then forks --workers children before it has
// any thread (fork copies only the calling thread).  Each child is an
// iterative server on the inherited listener: it waits in accept_connection
// (a poll() on the listener; each woken child tries a nonblocking accept4,
// one gets the connection, the others wait again) and serves the connection
// to the end (blocking_connection.h, on an 8 MiB stack) before accepting
// again.  Processes share nothing but the listening socket, so a crashing
// request kills one worker, not the server.
//
// The parent only supervises, in a sigwait() loop: a child that dies is
// reaped and replaced; SIGINT/SIGTERM is forwarded to every child (each runs
// the usual stop protocol: finish the request in progress, exit 0), and the
// parent waits for them for --drain-ms plus a second before SIGKILL, then
// exits 0.  Breaks at: --workers + 1 simultaneous long-lived connections
// (the next one waits in the backlog), and each worker costs a process
// (page tables, a few MiB RSS after copy-on-write).

#include <cerrno>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <vector>

#include <sys/wait.h>
#include <unistd.h>

#include "dumb/blocking_connection.h"
#include "dumb/timer_heap.h"

namespace {

pid_t spawn_worker(const common::ServerConfig& config, int listener) {
  pid_t pid = fork();
  if (pid == 0) std::exit(common::run_server(config, listener, dumb::serve_connections_in_turn));
  if (pid < 0) std::perror("fork");
  return pid;
}

sigset_t supervised_signals() {
  sigset_t set = common::stop_signals();
  sigaddset(&set, SIGCHLD);
  return set;
}

// Reaps every dead child; replaces it unless stopping.  Returns how many
// children are left alive.
std::size_t reap(std::vector<pid_t>& workers, const common::ServerConfig& config, int listener, bool stopping) {
  for (pid_t pid; (pid = waitpid(-1, nullptr, WNOHANG)) > 0;) {
    for (pid_t& worker : workers) {
      if (worker != pid) continue;
      worker = stopping ? -1 : spawn_worker(config, listener);
      if (!stopping) std::fprintf(stderr, "dumb_prefork: worker %d died; replaced by %d\n", pid, worker);
    }
  }
  std::size_t alive = 0;
  for (pid_t worker : workers) alive += worker > 0;
  return alive;
}

}  // namespace

int main(int argc, char** argv) {
  const common::ServerRow& row = common::server_row("dumb_prefork");
  common::ServerConfig config = common::parse_flags(argc, argv, row, {4, "worker processes"});
  common::block_stop_signals();
  sigset_t set = supervised_signals();
  sigprocmask(SIG_BLOCK, &set, nullptr);  // children inherit the mask; run_server keeps INT/TERM blocked
  int listener = common::open_listener(config, row);
  std::vector<pid_t> workers;
  for (int i = 0; i < config.workers; ++i) workers.push_back(spawn_worker(config, listener));

  for (;;) {  // supervise
    int sig = 0;
    sigwait(&set, &sig);
    if (sig == SIGCHLD) {
      reap(workers, config, listener, /*stopping=*/false);
      continue;
    }
    break;
  }

  for (pid_t worker : workers)
    if (worker > 0) kill(worker, SIGTERM);
  sigset_t chld;
  sigemptyset(&chld);
  sigaddset(&chld, SIGCHLD);
  auto deadline = dumb::Clock::now() + config.drain + std::chrono::seconds(1);
  while (reap(workers, config, listener, /*stopping=*/true) > 0) {
    auto left = deadline - dumb::Clock::now();
    if (left <= dumb::Clock::duration::zero()) {
      for (pid_t worker : workers)
        if (worker > 0) kill(worker, SIGKILL);
      while (reap(workers, config, listener, /*stopping=*/true) > 0) usleep(1000);
      break;
    }
    timespec timeout{0, 10'000'000};  // re-check at least every 10 ms
    sigtimedwait(&chld, nullptr, &timeout);
  }
  close(listener);
  return 0;
}
