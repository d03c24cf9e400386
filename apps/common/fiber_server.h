// common/fiber_server.h -- what the servers built on gort share (dumb_fiber,
// chat_fiber): the flags and the listening line of server_main.h, the
// signal thread, and a gort::net::Server run until SIGINT/SIGTERM.
//
//     int serve(common::FiberServer& fs) {                 // runs in the main fiber
//       gort::net::Server server(handler, fs.server_options("my connection"));
//       return fs.serve_until_stopped(server);           // serves, then shuts down
//     }
//     int main(int argc, char** argv) { return common::fiber_server_main(argc, argv, "dumb_fiber", serve); }
//
// The stop is gort::net::Server::shutdown (server.h): on SIGINT/SIGTERM the
// listener is closed, every connection's read side is shut down (a handler
// waiting for a request gets end of file, a busy one finishes its request
// first), and the handlers get until --drain-ms; then the connections still
// open are closed and the handlers' context canceled, and once they have
// returned the process exits 0 -- the contract of server_main.h.
//
// Listening: one SO_REUSEPORT listener per worker on the one port
// (gort::net::listen_tcp_group), each served by its own acceptor fiber.
// The kernel spreads new connections over them, so a burst is accepted by
// as many fibers at once, into as many backlogs; with one listener, the
// acceptor's share of its worker (it waits behind the fibers it spawned)
// and one backlog of net.core.somaxconn let a burst overflow the queue.
//
// Flags: those of server_main.h plus --workers N (gort workers; default
// gort::default_workers(): GORT_PROCS, else the CPUs in the affinity mask),
// --debug-addr HOST:PORT (gort::debug::serve: /metrics and a live page),
// --max-connections N (server_options(): past it a new client is told
// kServerBusy and closed) and --idle-timeout MS (config().idle_timeout: the
// handler applies it; only it knows when a connection is idle).
//
// Signals: SIGINT/SIGTERM are blocked in every thread before gort::run
// starts (so the workers inherit the mask) and taken by one plain thread in
// sigwait(), which only try_sends the signal number on a gort::Chan -- a
// channel works from any thread -- where serve_until_stopped() receives it.
// Everything else (the shutdown) happens in fibers, which is where gort::net
// objects are meant to be used.
// Rejected: closing the Listener from the signal thread (it would race
// gort::run's return); a fiber reading a signalfd (gort::net wraps sockets
// only); go_spawn from the signal thread (also races gort::run's return).

#pragma once

#include <chrono>
#include <functional>
#include <string_view>
#include <vector>

#include <gort/chan.h>
#include <gort/net.h>

#include "common/server_main.h"

namespace common {

class FiberServer {
 public:
  FiberServer(const ServerConfig& config, std::string_view name, std::vector<gort::net::Listener>& listeners)
      : config_(config), name_(name), listeners_(listeners) {}

  const ServerConfig& config() const noexcept { return config_; }

  // --max-connections with kServerBusy as the refusal; connection fibers
  // named `fiber_name` (static storage) in fatal errors.
  gort::net::ServerOptions server_options(const char* fiber_name) const;

  // Serves the listeners with `server` until SIGINT/SIGTERM, then shuts it
  // down with --drain-ms as the deadline. Returns the exit status: 0 after a
  // signal, 1 if serving failed (the accept error is printed). Call once,
  // from the main fiber.
  int serve_until_stopped(gort::net::Server& server);

  // For fiber_server_main: the signal thread's hand-off.
  gort::Chan<int>& stop_channel() noexcept { return stop_; }

 private:
  const ServerConfig& config_;
  std::string_view name_;
  std::vector<gort::net::Listener>& listeners_;  // one per worker, on one port (listen_tcp_group)
  gort::Chan<int> stop_{1};  // a signal number, or -1 when serving failed; one slot: later ones are dropped
};

using FiberServeFn = std::function<int(FiberServer&)>;

// parse_flags, block the stop signals, gort::run; in the main fiber:
// listen_tcp, print "<name> listening on <host>:<port>", start the signal
// thread, serve(server); then stop the signal thread.  Returns serve's exit
// status (1 if it cannot listen).
// default_idle_timeout: --idle-timeout's default for this server.
int fiber_server_main(int argc, char** argv, std::string_view name, FiberServeFn serve,
                      std::chrono::milliseconds default_idle_timeout = {});

}  // namespace common
