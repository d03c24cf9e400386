// dumb_epoll -- one thread, one epoll set, a state machine per connection
// (event_connection.h) and a timer heap for WAIT (epoll_loop.h).
//
// The loop thread has an 8 MiB stack because BURN runs inline on it: a
// BURN 10000 (~1 ms) holds up every other connection for its duration --
// the price of having one thread.  Everything else (WAIT, slow readers, slow
// senders) costs only memory: a connection is ~17 KiB of state, no thread.
// Breaks at: CPU-bound requests (one core), and anything that blocks the loop.

#include "dumb/epoll_loop.h"

namespace {

void serve(common::ServerContext& ctx) { dumb::EpollLoop(ctx, /*shared_listener=*/false).run(); }

}  // namespace

int main(int argc, char** argv) { return common::server_main(argc, argv, "dumb_epoll", serve); }
