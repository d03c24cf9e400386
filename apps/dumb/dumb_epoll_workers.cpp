// dumb_epoll_workers -- one epoll loop per worker thread (epoll_loop.h), all
// watching the same listener.
//
// Each loop registers the listener with EPOLLEXCLUSIVE, so a new connection
// wakes one waiting loop (not all of them) and that loop accepts and keeps
// it: connections spread over the workers that are idle at the time, and a
// connection never moves.  No state is shared between loops beyond the
// listener and the stop protocol.  A BURN stalls only its own loop's
// connections.  Breaks at: imbalance -- a loop stuck on CPU-heavy connections
// keeps them even when another loop is idle (no work stealing).
// Rejected: SO_REUSEPORT listeners per worker (the kernel hashes connections
// to a loop even when it is busy); an acceptor thread handing fds over a
// queue (an extra hop and a wake-up per connection).

#include <vector>

#include "dumb/epoll_loop.h"

namespace {

void serve(common::ServerContext& ctx) {
  std::vector<common::BigStackThread> workers;
  for (int i = 1; i < ctx.config().workers; ++i)
    workers.emplace_back([&ctx] { dumb::EpollLoop(ctx, /*shared_listener=*/true).run(); });
  dumb::EpollLoop(ctx, /*shared_listener=*/true).run();  // this thread is worker 0
  for (auto& worker : workers) worker.join();
}

}  // namespace

int main(int argc, char** argv) {
  return common::server_main(argc, argv, "dumb_epoll_workers", serve, {4, "event loop threads"});
}
