// common/fiber_server.cpp -- see fiber_server.h.

#include "common/fiber_server.h"

#include <pthread.h>

#include <chrono>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <string>
#include <thread>

#include <gort/gort.h>

#include "common/line_framer.h"

namespace common {

namespace {

using namespace std::chrono_literals;

// The plain thread that takes SIGINT/SIGTERM (blocked everywhere) and hands
// them to the main fiber.  Stopped by setting `quit` and sending it a
// SIGTERM of its own.
class SignalThread {
 public:
  explicit SignalThread(gort::Chan<int>& stop)
      : thread_([this, &stop] {
          sigset_t set = stop_signals();
          for (;;) {
            int sig = 0;
            sigwait(&set, &sig);
            if (quit_.load(std::memory_order_acquire)) return;  // pairs with ~SignalThread's store
            (void)stop.try_send(int(sig));
          }
        }) {}
  ~SignalThread() {
    quit_.store(true, std::memory_order_release);
    pthread_kill(thread_.native_handle(), SIGTERM);
    thread_.join();  // blocks this worker for a moment, once, at exit
  }

 private:
  std::atomic<bool> quit_{false};
  std::thread thread_;
};

int serve_in_main_fiber(const ServerConfig& config, std::string_view name, const FiberServeFn& serve) {
  std::string address = config.host + ":" + std::to_string(config.port);
  // The group's listeners set SO_REUSEPORT, which would let them join
  // another process's on the same port without a word: unless --reuseport
  // asks for that, a port in use is an error, as for any server.
  if (!config.reuseport && config.port != 0) {
    auto probe = gort::net::listen_tcp(address);  // no SO_REUSEPORT: fails if anyone listens there
    if (!probe) {
      std::fprintf(stderr, "%.*s: cannot listen on %s: %s%s\n", int(name.size()), name.data(), address.c_str(),
                   probe.error().message().c_str(),
                   probe.error() == gort::net::Errc::kAddressInUse ? " (--reuseport shares the port)" : "");
      return 1;
    }
    (void)probe->close();
  }
  // One listener per worker (fiber_server.h): a burst of connections is
  // accepted by as many fibers, into as many backlogs.
  auto listeners = gort::net::listen_tcp_group(address, config.workers);
  if (!listeners) {
    std::fprintf(stderr, "%.*s: cannot listen on %s: %s\n", int(name.size()), name.data(), address.c_str(),
                 listeners.error().message().c_str());
    return 1;
  }
  auto local = listeners->front().local_address();
  std::printf("%.*s listening on %s:%u\n", int(name.size()), name.data(), config.host.c_str(),
              local ? unsigned(local->port()) : unsigned(config.port));
  std::fflush(stdout);
  std::unique_ptr<gort::debug::DebugServer> debug;
  if (!config.debug_addr.empty()) {
    auto started = gort::debug::serve(config.debug_addr);
    if (!started) {
      std::fprintf(stderr, "%.*s: cannot serve --debug-addr %s: %s\n", int(name.size()), name.data(),
                   config.debug_addr.c_str(), started.error().message().c_str());
      return 1;
    }
    debug = std::move(*started);
    std::fprintf(stderr, "%.*s: runtime metrics on http://%s/metrics, a live page on http://%s/\n", int(name.size()),
                 name.data(), debug->address().c_str(), debug->address().c_str());
  }
  FiberServer server(config, name, *listeners);
  SignalThread signals(server.stop_channel());
  int status = serve(server);
  if (debug) debug->close();
  return status;
}

}  // namespace

gort::net::ServerOptions FiberServer::server_options(const char* fiber_name) const {
  gort::net::ServerOptions options;
  options.max_connections = config_.max_connections;
  options.busy_reply = std::string(kServerBusy);
  options.fiber_name = fiber_name;
  return options;
}

int FiberServer::serve_until_stopped(gort::net::Server& server) {
  gort::WaitGroup serving;  // this fiber outlives the serving ones: they may use *this to the end
  for (gort::net::Listener& listener : listeners_) {
    serving.add(1);
    go_spawn([&] {
      auto served = server.serve(listener);
      if (!served && !server.shutting_down()) {  // a listener failed: stop
        std::fprintf(stderr, "%.*s: %s\n", int(name_.size()), name_.data(), served.error().message().c_str());
        (void)stop_.try_send(-1);
      }
      serving.done();
    });
  }
  bool signalled = stop_.recv().value_or(-1) >= 0;
  auto drained = server.shutdown(gort::Clock::now() + config_.drain);
  if (!drained)
    std::fprintf(stderr, "%.*s: drain took over %lld ms; closed the connections left\n", int(name_.size()),
                 name_.data(), static_cast<long long>(config_.drain.count()));
  serving.wait();
  return signalled ? 0 : 1;
}

int fiber_server_main(int argc, char** argv, std::string_view name, FiberServeFn serve,
                      std::chrono::milliseconds default_idle_timeout) {
  const ServerRow& row = server_row(name);
  ServerTraits traits{gort::default_workers(), "gort worker threads (the default: GORT_PROCS, else the CPU count)",
                      /*connection_limits=*/true, default_idle_timeout};
  traits.debug_endpoint = true;
  traits.redis_bus = row.protocol == Protocol::kChat;  // chat_fiber --redis (chat/redis_bus.h)
  ServerConfig config = parse_flags(argc, argv, row, traits);
  block_stop_signals();  // before gort::run starts any thread
  gort::Config runtime;
  runtime.workers = config.workers;
  return gort::run(runtime, [&] { return serve_in_main_fiber(config, name, serve); });
}

}  // namespace common
