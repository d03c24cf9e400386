// dumb/fiber_server.cpp -- see fiber_server.h.

#include "dumb/fiber_server.h"

#include <pthread.h>
#include <sched.h>

#include <chrono>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <thread>

#include <gort/gort.h>

#include <sys/socket.h>

#include "dumb/protocol.h"

namespace dumb {

namespace {

using namespace std::chrono_literals;

int cpus_in_affinity_mask() {
  cpu_set_t set;
  if (sched_getaffinity(0, sizeof set, &set) != 0) return 1;
  return CPU_COUNT(&set);
}

bool has_flag(int argc, char** argv, std::string_view flag) {
  for (int i = 1; i < argc; ++i)
    if (argv[i] == flag) return true;
  return false;
}

// The plain thread that takes SIGINT/SIGTERM (blocked everywhere) and hands
// them to the main fiber.  Stopped by setting `quit` and sending it a
// SIGTERM of its own.
class SignalThread {
 public:
  explicit SignalThread(gort::Chan<int>& stop)
      : thread_([this, &stop] {
          sigset_t set;
          sigemptyset(&set);
          sigaddset(&set, SIGINT);
          sigaddset(&set, SIGTERM);
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
  auto listener = gort::net::listen_tcp(address);
  if (!listener) {
    std::fprintf(stderr, "%.*s: cannot listen on %s: %s\n", int(name.size()), name.data(), address.c_str(),
                 listener.error().message().c_str());
    return 1;
  }
  auto local = listener->local_address();
  std::printf("%.*s listening on %s:%u\n", int(name.size()), name.data(), config.host.c_str(),
              local ? unsigned(local->port()) : unsigned(config.port));
  std::fflush(stdout);
  FiberServer server(config, name, *listener);
  SignalThread signals(server.stop_channel());
  return serve(server);
}

}  // namespace

bool FiberServer::wait_for_stop() { return stop_.recv().value_or(-1) >= 0; }

void FiberServer::drain(const std::atomic<int>& active) {
  auto deadline = gort::Clock::now() + config_.drain;
  // acquire: pairs with each fiber's release decrement, its last access to
  // the state the caller is about to destroy.
  while (active.load(std::memory_order_acquire) > 0) {
    if (gort::Clock::now() >= deadline) {
      std::fprintf(stderr, "%.*s: drain took over %lld ms; exiting anyway\n", int(name_.size()), name_.data(),
                   static_cast<long long>(config_.drain.count()));
      std::fflush(stdout);
      std::_Exit(0);
    }
    gort::sleep_for(5ms);
  }
}

void refuse_busy(gort::net::Conn& conn) {
  (void)::send(conn.native_handle(), kServerBusy.data(), kServerBusy.size(), MSG_DONTWAIT | MSG_NOSIGNAL);
  (void)conn.close();
}

int fiber_server_main(int argc, char** argv, std::string_view name, FiberServeFn serve,
                      std::chrono::milliseconds default_idle_timeout) {
  const ServerRow& row = server_row(name);
  ServerTraits traits{cpus_in_affinity_mask(), "gort worker threads, or GORT_PROCS; the default is the CPU count",
                      /*connection_limits=*/true, default_idle_timeout};
  ServerConfig config = parse_flags(argc, argv, row, traits);
  block_stop_signals();  // before gort::run starts any thread
  gort::Config runtime;
  if (has_flag(argc, argv, "--workers")) runtime.workers = config.workers;
  return gort::run(runtime, [&] { return serve_in_main_fiber(config, name, serve); });
}

}  // namespace dumb
