// tests/abuse/abuse.h -- what the abuse suites (test_abuse_dumb.cpp,
// test_abuse_chat.cpp) share: raw client sockets an attacker opens by the
// hundred (and resets), the checks every case ends with, and the scale.
//
// Every case follows one pattern:
//   1. start the server, let a bystander see it working, record its
//      descriptors (the baseline);
//   2. attack, over 127.0.0.1 only, bounded in count and time;
//   3. check that the server is alive, that a bystander is answered within
//      a generous bound (or, where the architecture cannot by design, that it
//      is not: Expectation), that its descriptors return to the baseline and
//      that its resident memory stayed bounded.
//
// Counts scale down in sanitizer builds (kScale): the attacks are the same
// shape, only fewer.

#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "../apps/server_harness.h"

namespace abuse {

using namespace harness;

// Attack counts are divided by this in sanitizer builds.
#ifdef GORT_SANITIZER_BUILD
inline constexpr int kScale = 5;
#else
inline constexpr int kScale = 1;
#endif

// A bystander must be answered within this while a server survives an attack:
// generous, to absorb a loaded 2-core machine, and still far below the
// seconds a stalled server takes.
inline constexpr milliseconds kAnswerBound = 2000ms * kSlowdown;
// Descriptors must be back at the baseline within this after an attack ends.
inline constexpr milliseconds kReleaseBound = 10000ms * kSlowdown;
// Growth of resident memory an attack may cause.
inline constexpr long kRssGrowthKib = 96 * 1024 * kSlowdown;

// Raises this process's soft RLIMIT_NOFILE to its hard limit, once: the
// attacks open hundreds of sockets, and the servers inherit the limit.
void raise_open_files_limit();

// A client socket as an attacker uses it: no failure is reported on its own,
// every call says whether it worked.
class Socket {
 public:
  // Connects (blocking) to 127.0.0.1:port; valid() says whether it did.
  explicit Socket(std::uint16_t port, int rcvbuf = 0);
  ~Socket();
  Socket(Socket&& other) noexcept : fd_(other.fd_) { other.fd_ = -1; }
  Socket& operator=(Socket&&) = delete;
  Socket(const Socket&) = delete;

  bool valid() const noexcept { return fd_ >= 0; }
  int fd() const noexcept { return fd_; }
  // Sends what the socket takes within `timeout`; returns how many bytes.
  std::size_t send(std::string_view bytes, milliseconds timeout = 2000ms);
  // The bytes of one recv (up to max) if any arrive within `timeout`; empty
  // on timeout, EOF or error.
  std::string receive(std::size_t max, milliseconds timeout);
  // Closes with an RST instead of a FIN (SO_LINGER 0).
  void reset();
  void close();

 private:
  int fd_ = -1;
};

// Opens n connections (those that fail are left out).
std::vector<Socket> open_many(std::uint16_t port, int n, int rcvbuf = 0);

// Polls `done` every few milliseconds until it holds or `bound` passes.
template <class Predicate>
bool eventually(milliseconds bound, Predicate done) {
  auto deadline = Clock::now() + bound;
  for (;;) {
    if (done()) return true;
    if (Clock::now() > deadline) return false;
    std::this_thread::sleep_for(10ms);
  }
}

// A DUMB bystander: a fresh connection sends PING; the time until its PONG,
// or nullopt if none came within `bound`.
std::optional<milliseconds> dumb_ping(std::uint16_t port, milliseconds bound);

// A chat bystander: two fresh clients; one says a line, the time until the
// other has it, or nullopt if it did not arrive within `bound`.
// `once_connected`, if given, runs after both have connected and before
// they wait for their welcome.
std::optional<milliseconds> chat_relay(std::uint16_t port, milliseconds bound,
                                       const std::function<void()>& once_connected = {});

// A chat client's welcome: the room has taken it in, and from here it is
// sent every line said (the listeners accept in any order, so a client
// connected first may join after one connected later). False if the
// welcome did not come within `bound`.
bool await_welcome(Socket& client, milliseconds bound);

// The server's descriptor count once it has settled (a pre-forking server
// starts its workers after it listens): two equal readings in a row.
int settled_open_fds(const ServerProcess& server);

// The end of every case: the server is alive and its descriptors come back
// to `baseline_fds`; its RSS stays within kRssGrowthKib of `baseline_rss`.
void expect_recovered(const ServerProcess& server, int baseline_fds, long baseline_rss);

}  // namespace abuse
