// tests/abuse/abuse.cpp -- see abuse.h.

#include "abuse.h"

#include <gtest/gtest.h>

#include <cerrno>
#include <thread>
#include <utility>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

namespace abuse {

void raise_open_files_limit() {
  rlimit limit{};
  getrlimit(RLIMIT_NOFILE, &limit);
  limit.rlim_cur = limit.rlim_max;
  setrlimit(RLIMIT_NOFILE, &limit);
}

// --------------------------------------------------------------- socket ---

Socket::Socket(std::uint16_t port, int rcvbuf) {
  fd_ = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd_ < 0) return;
  if (rcvbuf > 0) setsockopt(fd_, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof rcvbuf);
  int one = 1;
  setsockopt(fd_, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  timeval tv{5, 0};  // a connect stuck on a full backlog gives up
  setsockopt(fd_, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(port);
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (connect(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) close();
}

Socket::~Socket() { close(); }

void Socket::close() {
  if (fd_ >= 0) ::close(fd_);
  fd_ = -1;
}

void Socket::reset() {
  if (fd_ < 0) return;
  linger abort{1, 0};
  setsockopt(fd_, SOL_SOCKET, SO_LINGER, &abort, sizeof abort);
  close();
}

std::size_t Socket::send(std::string_view bytes, milliseconds timeout) {
  std::size_t sent = 0;
  auto deadline = Clock::now() + timeout;
  while (fd_ >= 0 && sent < bytes.size()) {
    ssize_t n = ::send(fd_, bytes.data() + sent, bytes.size() - sent, MSG_NOSIGNAL | MSG_DONTWAIT);
    if (n > 0) {
      sent += static_cast<std::size_t>(n);
      continue;
    }
    if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) break;
    auto left = std::chrono::duration_cast<milliseconds>(deadline - Clock::now()).count();
    if (left <= 0) break;
    pollfd p{fd_, POLLOUT, 0};
    poll(&p, 1, static_cast<int>(left));
  }
  return sent;
}

std::string Socket::receive(std::size_t max, milliseconds timeout) {
  char buf[65536];
  pollfd p{fd_, POLLIN, 0};
  if (fd_ < 0 || poll(&p, 1, static_cast<int>(timeout.count())) <= 0) return {};
  ssize_t n = recv(fd_, buf, std::min(sizeof buf, max), MSG_DONTWAIT);
  return n > 0 ? std::string(buf, static_cast<std::size_t>(n)) : std::string();
}

std::vector<Socket> open_many(std::uint16_t port, int n, int rcvbuf) {
  std::vector<Socket> sockets;
  sockets.reserve(static_cast<std::size_t>(n));
  for (int i = 0; i < n; ++i) {
    Socket s(port, rcvbuf);
    if (s.valid()) sockets.push_back(std::move(s));
  }
  return sockets;
}

// ----------------------------------------------------------- bystanders ---

std::optional<milliseconds> dumb_ping(std::uint16_t port, milliseconds bound) {
  auto start = Clock::now();
  Socket s(port);
  if (!s.valid() || s.send("PING\n", bound) != 5) return std::nullopt;
  std::string reply;
  while (reply.find('\n') == std::string::npos) {
    auto left = bound - std::chrono::duration_cast<milliseconds>(Clock::now() - start);
    if (left.count() <= 0) return std::nullopt;
    std::string more = s.receive(64, left);
    if (more.empty()) return std::nullopt;
    reply += more;
  }
  if (reply != "PONG\n") return std::nullopt;
  return std::chrono::duration_cast<milliseconds>(Clock::now() - start);
}

namespace {
// Reads up to the end of the line that contains `needle`; false if it did
// not arrive within `deadline`.
bool await_line(Socket& s, std::string_view needle, Clock::time_point deadline) {
  std::string seen;
  while (seen.find(needle) == std::string::npos) {
    auto left = std::chrono::duration_cast<milliseconds>(deadline - Clock::now());
    if (left.count() <= 0) return false;
    std::string more = s.receive(65536, left);
    if (more.empty()) return false;
    seen += more;
    if (seen.size() > (1u << 20)) seen.erase(0, seen.size() - needle.size());  // bounded
  }
  return true;
}
}  // namespace

bool await_welcome(Socket& client, milliseconds bound) {
  return await_line(client, "Welcome", Clock::now() + bound);
}

std::optional<milliseconds> chat_relay(std::uint16_t port, milliseconds bound,
                                       const std::function<void()>& once_connected) {
  auto start = Clock::now();
  auto deadline = start + bound;
  Socket speaker(port), hearer(port);
  if (!speaker.valid() || !hearer.valid()) return std::nullopt;
  if (once_connected) once_connected();
  if (!await_line(speaker, "Welcome", deadline) || !await_line(hearer, "Welcome", deadline)) return std::nullopt;
  auto said = Clock::now();
  if (speaker.send("bystander here\n", bound) == 0) return std::nullopt;
  if (!await_line(hearer, "]: bystander here\n", deadline)) return std::nullopt;
  return std::chrono::duration_cast<milliseconds>(Clock::now() - said);
}

// --------------------------------------------------------------- checks ---

int settled_open_fds(const ServerProcess& server) {
  int last = server.tree_open_fds();
  eventually(2000ms, [&] {
    std::this_thread::sleep_for(50ms);
    int now = server.tree_open_fds();
    return std::exchange(last, now) == now;
  });
  return last;
}

void expect_recovered(const ServerProcess& server, int baseline_fds, long baseline_rss) {
  EXPECT_TRUE(server.alive()) << "the server died";
  int fds = 0;
  EXPECT_TRUE(eventually(kReleaseBound, [&] { return (fds = server.tree_open_fds()) <= baseline_fds; }))
      << "descriptors: " << fds << " open, " << baseline_fds << " before the attack";
  long rss = server.tree_rss_kib();
  EXPECT_LE(rss, baseline_rss + kRssGrowthKib)
      << "resident memory grew from " << baseline_rss << " KiB to " << rss << " KiB";
}

}  // namespace abuse
