// net_support.h: helpers shared by the gort::net tests.
#pragma once

#include <spawn.h>
#include <sys/wait.h>

#include <gort/blocking.h>
#include <gort/gort.h>
#include <gort/net.h>

#include <atomic>
#include <string>
#include <vector>

#include "support.h"

extern char** environ;

namespace gort_test {

// An echo server on 127.0.0.1:<ephemeral>: one fiber per connection.
// stop() closes the listener and waits until every connection fiber ended.
class EchoServer {
 public:
  explicit EchoServer(std::string address = "127.0.0.1:0") {
    auto ln = gort::net::listen_tcp(address);
    EXPECT_TRUE(ln) << ln.error().message();
    if (!ln) return;
    listener_ = std::move(*ln);
    address_ = listener_.local_address()->to_string();
    fibers_.add(1);
    go_spawn([this] { serve(); });
  }
  ~EchoServer() { stop(); }

  const std::string& address() const { return address_; }
  int peak_connections() const { return peak_.load(); }
  int64_t accepted() const { return accepted_.load(); }

  void stop() {
    if (stopped_) return;
    stopped_ = true;
    (void)listener_.close();
    fibers_.wait();
  }

 private:
  void serve() {
    for (;;) {
      auto c = listener_.accept();
      if (!c) break;  // closed
      ++accepted_;
      fibers_.add(1);
      go_spawn(
          [this](gort::net::Conn conn) {
            int now = ++open_;
            for (int p = peak_.load(); now > p && !peak_.compare_exchange_weak(p, now);) {
            }
            char buf[4096];
            for (;;) {
              auto n = conn.read(buf, sizeof buf);
              if (!n || !conn.write_all(buf, *n)) break;
            }
            --open_;
            fibers_.done();
          },
          std::move(*c));
    }
    fibers_.done();
  }

  gort::net::Listener listener_;
  std::string address_;
  gort::WaitGroup fibers_;
  std::atomic<int> open_{0}, peak_{0};
  std::atomic<int64_t> accepted_{0};
  bool stopped_ = false;
};

// Runs net_echo_client in a separate process and waits (on a blocking
// helper, so the workers keep serving) for its exit status.
inline int run_echo_client(const std::string& address, int conns, int rounds, int size, int delay_ms = 0) {
  std::vector<std::string> args{GORT_NET_ECHO_CLIENT,  address,
                                std::to_string(conns), std::to_string(rounds),
                                std::to_string(size),  std::to_string(delay_ms)};
  std::vector<char*> argv;
  for (auto& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  pid_t pid;
  if (posix_spawn(&pid, argv[0], nullptr, nullptr, argv.data(), environ) != 0) return -1;
  int status = 0;
  gort::blocking([&] { waitpid(pid, &status, 0); });
  return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

inline double elapsed_s(gort::Clock::time_point since) {
  return std::chrono::duration<double>(gort::Clock::now() - since).count();
}

}  // namespace gort_test
