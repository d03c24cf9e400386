// tests/abuse/test_limits.cpp -- the limits of the fiber servers (dumb_fiber,
// chat_fiber; docs/SERVERS.md, "Limits"): --max-connections answers a client
// past it with "ERROR server busy" instead of leaving it in the backlog, also
// by default at the descriptor limit; --idle-timeout closes a silent
// connection and leaves a talking one alone.

#include <gtest/gtest.h>

#include <cerrno>
#include <cstdio>
#include <thread>

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "abuse.h"

namespace {

using namespace abuse;
using common::Protocol;

// The first line a new client receives: chat greets, DUMB answers a PING.
std::string first_line(Socket& s, Protocol protocol) {
  if (protocol == Protocol::kDumb) s.send("PING\n");
  std::string line;
  auto deadline = Clock::now() + kAnswerBound;
  while (line.find('\n') == std::string::npos && Clock::now() < deadline) {
    std::string more = s.receive(256, 100ms);
    line += more;
  }
  return line.substr(0, line.find('\n') + 1);
}

// True if the server closes `s` within kAnswerBound; what it sent before
// goes to *said.
bool closed_soon(Socket& s, std::string* said = nullptr) {
  return eventually(kAnswerBound, [&] {
    char buf[256];
    ssize_t n = recv(s.fd(), buf, sizeof buf, MSG_DONTWAIT);
    if (n > 0 && said) said->append(buf, static_cast<std::size_t>(n));
    return n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK);
  });
}

class Limits : public ::testing::TestWithParam<const char*> {
 protected:
  static void SetUpTestSuite() { raise_open_files_limit(); }
  void start(std::vector<std::string> args, harness::Limits limits = {}) {
    server_ = std::make_unique<ServerProcess>(GetParam(), args, limits);
    ASSERT_NE(server_->port(), 0);
  }
  Protocol protocol() const { return common::find_server(GetParam())->protocol; }
  bool chat() const { return protocol() == Protocol::kChat; }
  std::string served_reply() const { return chat() ? "Welcome" : "PONG\n"; }
  std::unique_ptr<ServerProcess> server_;
};

TEST_P(Limits, PastMaxConnectionsAClientIsToldTheServerIsBusy) {
  start({"--max-connections", "10"});
  std::vector<Socket> held;
  for (int i = 0; i < 10; ++i) {
    held.emplace_back(server_->port());
    EXPECT_EQ(first_line(held.back(), protocol()).rfind(served_reply(), 0), 0u) << "client " << i;
  }
  Socket extra(server_->port());
  EXPECT_EQ(first_line(extra, protocol()), "ERROR server busy\n");
  EXPECT_TRUE(closed_soon(extra));
  held.pop_back();
  EXPECT_TRUE(eventually(kAnswerBound, [&] {
    Socket again(server_->port());
    return first_line(again, protocol()).rfind(served_reply(), 0) == 0;
  })) << "a place that freed up was not given to a new client";
}

TEST_P(Limits, AtTheDescriptorLimitClientsAreAnsweredNotLeftInTheBacklog) {
  start({}, harness::Limits{128});  // default --max-connections: 128 - 64
  auto clients = open_many(server_->port(), 100);
  int served = 0, busy = 0;
  for (auto& s : clients) {
    std::string line = first_line(s, protocol());
    served += line.rfind(served_reply(), 0) == 0;
    busy += line == "ERROR server busy\n";
  }
  EXPECT_EQ(served + busy, 100) << "some clients got no answer";
  EXPECT_GT(busy, 0);
  EXPECT_GT(served, 0);
}

TEST_P(Limits, IdleTimeoutClosesSilentConnectionsOnly) {
  start({"--idle-timeout", "300"});
  Socket silent(server_->port()), talking(server_->port());
  std::string talker;  // chat: "[User <n>]: ", n from its welcome (the listeners accept in any order)
  if (chat()) {
    first_line(silent, Protocol::kChat);
    std::string welcome = first_line(talking, Protocol::kChat);  // "Welcome chat user no. <n>!\n"
    std::size_t at = welcome.find("no. ");
    ASSERT_NE(at, std::string::npos) << welcome;
    talker = "[User " + welcome.substr(at + 4, welcome.find('!') - at - 4) + "]: ";
  }
  // The talking client says something every 100 ms for three idle timeouts.
  for (auto begin = Clock::now(); Clock::now() - begin < 900ms;) {
    if (chat()) {
      talking.send("still here\n");
      std::this_thread::sleep_for(100ms);
    } else {
      EXPECT_EQ(first_line(talking, Protocol::kDumb), "PONG\n");
      std::this_thread::sleep_for(100ms);
    }
  }
  std::string said;
  EXPECT_TRUE(closed_soon(silent, &said)) << "a silent connection outlived the idle timeout";
  if (!chat()) {
    EXPECT_EQ(said, "ERROR idle timeout\n");
  }
  if (chat()) {
    Socket listener(server_->port());
    first_line(listener, Protocol::kChat);
    talking.send("still here\n");
    EXPECT_EQ(first_line(listener, Protocol::kChat), talker + "still here\n") << "the talking client was closed";
  } else {
    EXPECT_EQ(first_line(talking, Protocol::kDumb), "PONG\n") << "the talking client was closed";
  }
}

// A burst of connections larger than one listen backlog, arriving while the
// server is busy (stopped here), is not dropped: a fiber server listens
// with one SO_REUSEPORT listener per worker, each with its own backlog and
// acceptor.  Not scaled down: while the server is stopped only the kernel
// works.  A connection whose SYN the kernel dropped stays in SYN_SENT.
TEST_P(Limits, ABurstBeyondOneListenBacklogIsNotDropped) {
  start({"--workers", "2"});
  int somaxconn = 4096;
  if (std::FILE* f = std::fopen("/proc/sys/net/core/somaxconn", "r")) {
    if (std::fscanf(f, "%d", &somaxconn) != 1) somaxconn = 4096;
    std::fclose(f);
  }
  const int n = somaxconn + somaxconn / 2;
  ASSERT_EQ(kill(server_->pid(), SIGSTOP), 0);
  std::vector<int> fds;
  for (int i = 0; i < n; ++i) {
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) break;
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons(server_->port());
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0 && errno != EINPROGRESS) {
      close(fd);
      break;
    }
    fds.push_back(fd);
  }
  auto established = [&] {
    int count = 0;
    for (int fd : fds) {
      tcp_info info{};
      socklen_t len = sizeof info;
      count += getsockopt(fd, IPPROTO_TCP, TCP_INFO, &info, &len) == 0 && info.tcpi_state == TCP_ESTABLISHED;
    }
    return count;
  };
  int up = 0;
  eventually(kAnswerBound, [&] { return (up = established()) == n; });
  ASSERT_EQ(kill(server_->pid(), SIGCONT), 0);
  EXPECT_EQ(int(fds.size()), n) << "the test could not open its sockets";
  EXPECT_EQ(up, n) << n - up << " of " << n << " connections were dropped from a full backlog (" << somaxconn
                   << " per listener)";
  for (int fd : fds) close(fd);
  Socket bystander(server_->port());
  EXPECT_EQ(first_line(bystander, protocol()).rfind(served_reply(), 0), 0u) << "not served after the burst";
}

// Another server on the same port is an error, unless both ask to share it
// (--reuseport): then the kernel spreads clients over them, and once one
// stops the other serves every new client.
TEST_P(Limits, APortInUseIsAnErrorUnlessShared) {
  start({"--reuseport"});
  std::string port = std::to_string(server_->port());
  std::string out;
  int status = -1;
  {
    std::string command = std::string(GORT_APPS_BINARY_DIR) + "/" + GetParam() + " --port " + port + " 2>&1";
    std::FILE* p = popen(command.c_str(), "r");
    ASSERT_NE(p, nullptr);
    char buf[512];
    for (std::size_t n; (n = std::fread(buf, 1, sizeof buf, p)) > 0;) out.append(buf, n);
    status = pclose(p);
  }
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 1) << out;
  EXPECT_NE(out.find("address already in use"), std::string::npos) << out;
  EXPECT_NE(out.find("--reuseport"), std::string::npos) << out;

  ServerProcess second(GetParam(), {"--port", port, "--reuseport"});
  ASSERT_EQ(second.port(), server_->port());
  for (int i = 0; i < 20; ++i) {
    Socket s(server_->port());
    EXPECT_EQ(first_line(s, protocol()).rfind(served_reply(), 0), 0u) << "client " << i;
  }
  EXPECT_EQ(server_->stop(5000ms * kSlowdown), std::optional<int>(0));
  for (int i = 0; i < 20; ++i) {
    Socket s(second.port());
    EXPECT_EQ(first_line(s, protocol()).rfind(served_reply(), 0), 0u) << "client " << i << " after the first stopped";
  }
  EXPECT_EQ(second.stop(5000ms * kSlowdown), std::optional<int>(0));
}

INSTANTIATE_TEST_SUITE_P(FiberServers, Limits, ::testing::Values("dumb_fiber", "chat_fiber"),
                         [](const auto& info) { return std::string(info.param); });

}  // namespace
