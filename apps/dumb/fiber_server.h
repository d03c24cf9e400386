// dumb/fiber_server.h -- what the servers built on gort share (dumb_fiber,
// chat_fiber): the flags and the listening line of server_main.h, a
// gort::net::Listener, and the same stop protocol carried out by fibers.
//
//     int serve(dumb::FiberServer& server) {             // runs in the main fiber
//       go_spawn([&] { accept loop on server.listener() ... });
//       server.wait_for_stop();                          // SIGINT/SIGTERM
//       ... stop accepting, tell connections to finish ...
//       server.drain(active);                            // bounded by --drain-ms
//       return 0;
//     }
//     int main(int argc, char** argv) { return dumb::fiber_server_main(argc, argv, "dumb_fiber", serve); }
//
// Flags: those of server_main.h plus --workers N (gort workers; default the
// runtime's: CPUs in the affinity mask, or GORT_PROCS), --max-connections N
// and --idle-timeout MS (docs/SERVERS.md, "Limits"; the server applies them:
// config().max_connections, config().idle_timeout).
//
// Signals: SIGINT/SIGTERM are blocked in every thread before gort::run
// starts (so the workers inherit the mask) and taken by one plain thread in
// sigwait(), which only try_sends the signal number on a gort::Chan -- a
// channel works from any thread -- where wait_for_stop() receives it.
// Everything else (closing the Listener, shutting connections down) happens
// in fibers, which is where gort::net objects are meant to be used.
// Rejected: closing the Listener from the signal thread (it would race
// gort::run's return); a fiber reading a signalfd (gort::net wraps sockets
// only); go_spawn from the signal thread (also races gort::run's return).

#pragma once

#include <atomic>
#include <chrono>
#include <functional>
#include <string_view>

#include <gort/chan.h>
#include <gort/net.h>

#include "dumb/server_main.h"

namespace dumb {

class FiberServer {
 public:
  FiberServer(const ServerConfig& config, std::string_view name, gort::net::Listener& listener)
      : config_(config), name_(name), listener_(listener) {}

  const ServerConfig& config() const noexcept { return config_; }
  std::string_view name() const noexcept { return name_; }
  gort::net::Listener& listener() noexcept { return listener_; }

  // Parks the calling fiber until SIGINT/SIGTERM arrives (true) or fail()
  // is called (false).  Call once, from the main fiber.
  bool wait_for_stop();
  // Ends wait_for_stop() with false: the server cannot go on (say its
  // accept loop died).  Any fiber.
  void fail() { (void)stop_.try_send(-1); }

  // Step 4 of the stop protocol: parks until `active` (fibers still running
  // that use the caller's state) reaches 0 and returns; if that takes longer
  // than --drain-ms, the process exits 0 at once (_Exit): abandoned fibers
  // would otherwise be torn down with the runtime while holding sockets.
  void drain(const std::atomic<int>& active);

  // For fiber_server_main: the signal thread's hand-off.
  gort::Chan<int>& stop_channel() noexcept { return stop_; }

 private:
  const ServerConfig& config_;
  std::string_view name_;
  gort::net::Listener& listener_;
  gort::Chan<int> stop_{1};  // a signal number, or -1 from fail(); one slot: later ones are dropped
};

using FiberServeFn = std::function<int(FiberServer&)>;

// parse_flags, block the stop signals, gort::run; in the main fiber:
// listen_tcp, print "<name> listening on <host>:<port>", start the signal
// thread, serve(server); then stop the signal thread.  Returns serve's exit
// status (1 if it cannot listen).
// default_idle_timeout: --idle-timeout's default for this server.
int fiber_server_main(int argc, char** argv, std::string_view name, FiberServeFn serve,
                      std::chrono::milliseconds default_idle_timeout = {});

// Tells a client the server is at --max-connections (kServerBusy, best
// effort: a fresh socket's empty send buffer takes it) and closes it.
void refuse_busy(gort::net::Conn& conn);

}  // namespace dumb
