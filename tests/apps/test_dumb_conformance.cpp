// tests/apps/test_dumb_conformance.cpp -- docs/PROTOCOL.md, rule by rule,
// against every DUMB server in apps/dumb/servers.def.
//
// Each test starts its own server process (ServerProcess picks a free port),
// talks to it with blocking sockets, then stops it with SIGTERM and checks it
// exits 0 in time.  CMake registers one ctest per server
// (dumb_conformance.<name>, --gtest_filter=*/<name>).

#include <gtest/gtest.h>

#include <atomic>
#include <csignal>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "server_harness.h"

namespace {

using namespace harness;

class Conformance : public ::testing::TestWithParam<common::ServerRow> {
 protected:
  void SetUp() override {
    server_ = std::make_unique<ServerProcess>(GetParam().name);
    ASSERT_NE(server_->port(), 0);
  }
  void TearDown() override {
    if (!server_ || server_->port() == 0) return;
    EXPECT_EQ(server_->stop(3000ms * kSlowdown), std::optional<int>(0)) << "SIGTERM: no clean exit";
  }
  std::uint16_t port() const { return server_->port(); }

  // Sends `requests` in one write and expects `replies`, in order.
  void expect_replies(std::string_view requests, const std::vector<std::string>& replies) {
    Client c(port());
    ASSERT_TRUE(c.send(requests));
    for (const auto& reply : replies) EXPECT_EQ(c.read_line(), reply) << "after sending " << requests;
  }

  std::unique_ptr<ServerProcess> server_;
};

TEST_P(Conformance, Ping) { expect_replies("PING\n", {"PONG\n"}); }

TEST_P(Conformance, CrLfEndsALine) { expect_replies("PING\r\nWAIT 0\r\n", {"PONG\n", "DONE\n"}); }

TEST_P(Conformance, WaitRepliesAfterTheDelay) {
  Client c(port());
  auto start = Clock::now();
  ASSERT_TRUE(c.send("WAIT 200\n"));
  EXPECT_EQ(c.read_line(), "DONE\n");
  EXPECT_GE(Clock::now() - start, 200ms);
  ASSERT_TRUE(c.send("WAIT 0\nWAIT 007\n"));
  EXPECT_EQ(c.read_line(), "DONE\n");
  EXPECT_EQ(c.read_line(), "DONE\n");
}

TEST_P(Conformance, BurnIncludingTheDeepest) {
  expect_replies("BURN 0\nBURN 10\nBURN 10000\nBURN 010\n",
                 {"RESULT 0\n", "RESULT 55\n", "RESULT 50005000\n", "RESULT 55\n"});
}

TEST_P(Conformance, SmallStreams) {
  Client c(port());
  ASSERT_TRUE(c.send("STREAM 0\nSTREAM 3\nPING\n"));
  EXPECT_EQ(c.read_line(), "DONE\n");
  EXPECT_EQ(c.read_line(), "AAADONE\n");
  EXPECT_EQ(c.read_line(), "PONG\n");
}

TEST_P(Conformance, LargeStreamReadFully) {
  const std::size_t n = 20'000'000 / kSlowdown;
  Client c(port());
  ASSERT_TRUE(c.send("STREAM " + std::to_string(n) + "\nPING\n"));
  std::string body = c.read_exact(n);
  ASSERT_EQ(body.size(), n);
  EXPECT_EQ(body.find_first_not_of('A'), std::string::npos);
  EXPECT_EQ(c.read_line(), "DONE\n");  // straight after the As: no newline between
  EXPECT_EQ(c.read_line(), "PONG\n");  // nothing interleaved
}

TEST_P(Conformance, StreamToAReaderThatDoesNotReadStaysBounded) {
  long before = server_->tree_rss_kib();
  Client c(port(), 5000ms, /*rcvbuf=*/16384);
  ASSERT_TRUE(c.send("STREAM 1073741824\n"));
  std::this_thread::sleep_for(300ms);
  EXPECT_EQ(c.drain(1000), 1000u);  // it is streaming
  std::this_thread::sleep_for(300ms);
  long growth = server_->tree_rss_kib() - before;
  // Sanitizer shadow memory (per process, for prefork) inflates RSS; 1 GiB
  // would still stand out.
  EXPECT_LT(growth, 64 * 1024 * kSlowdown)
      << "KiB: the server buffers the stream instead of writing it as the socket accepts it";
}

TEST_P(Conformance, MalformedRequests) {
  expect_replies(
      "\nHELLO\nping\n PING\nPINGX\nWAIT\t5\n\r\n"
      "PING x\nPING \n"
      "WAIT\nWAIT \nBURN\nSTREAM \n"
      "WAIT x\nWAIT 1.5\nWAIT +1\nWAIT  1\nWAIT 1 \nWAIT 1 2\nBURN 0x10\n"
      "WAIT -1\nWAIT -0\nWAIT 60001\nBURN 10001\nSTREAM 1073741825\nWAIT 99999999999999999999\n"
      "PING\n",
      {"UNKNOWN_COMMAND\n",        "UNKNOWN_COMMAND\n",           "UNKNOWN_COMMAND\n",
       "UNKNOWN_COMMAND\n",        "UNKNOWN_COMMAND\n",           "UNKNOWN_COMMAND\n",
       "UNKNOWN_COMMAND\n",        "ERROR unexpected argument\n", "ERROR unexpected argument\n",
       "ERROR missing argument\n", "ERROR missing argument\n",    "ERROR missing argument\n",
       "ERROR missing argument\n", "ERROR not a number\n",        "ERROR not a number\n",
       "ERROR not a number\n",     "ERROR not a number\n",        "ERROR not a number\n",
       "ERROR not a number\n",     "ERROR not a number\n",        "ERROR out of range\n",
       "ERROR out of range\n",     "ERROR out of range\n",        "ERROR out of range\n",
       "ERROR out of range\n",     "ERROR out of range\n",        "PONG\n"});
}

TEST_P(Conformance, LineLengthLimit) {
  std::string max(1024, 'A');
  std::string over(1025, 'A');
  expect_replies(
      max + "\n" + max + "\r\n" + over + "\n" + std::string(5000, 'B') + "\nPING\n",
      {"UNKNOWN_COMMAND\n", "UNKNOWN_COMMAND\n", "ERROR line too long\n", "ERROR line too long\n", "PONG\n"});
}

TEST_P(Conformance, HugeLineGetsOneErrorAndTheConnectionGoesOn) {
  Client c(port());
  std::string chunk(64 * 1024, 'x');
  for (int i = 0; i < 32; ++i) ASSERT_TRUE(c.send(chunk));  // 2 MiB without a newline
  ASSERT_TRUE(c.send("\nPING\n"));
  EXPECT_EQ(c.read_line(), "ERROR line too long\n");
  EXPECT_EQ(c.read_line(), "PONG\n");
}

TEST_P(Conformance, PipelinedRequestsAnsweredInOrder) {
  expect_replies("WAIT 100\nPING\nBURN 10\nSTREAM 5\nPING\nWAIT 0\nNOPE\n",
                 {"DONE\n", "PONG\n", "RESULT 55\n", "AAAAADONE\n", "PONG\n", "DONE\n", "UNKNOWN_COMMAND\n"});
}

TEST_P(Conformance, ManyPipelinedRequests) {
  std::string requests;
  for (int i = 0; i < 2000; ++i) requests += i % 2 ? "PING\n" : "BURN 3\n";
  Client c(port());
  ASSERT_TRUE(c.send(requests));
  for (int i = 0; i < 2000; ++i) ASSERT_EQ(c.read_line(), i % 2 ? "PONG\n" : "RESULT 6\n") << i;
}

TEST_P(Conformance, RequestsSplitAcrossWrites) {
  Client c(port());
  c.set_nodelay();
  for (std::string_view piece : {"PI", "NG\nWA", "IT 1", "0\r", "\nSTR", "EAM 2\n"}) {
    ASSERT_TRUE(c.send(piece));
    std::this_thread::sleep_for(20ms);
  }
  EXPECT_EQ(c.read_line(), "PONG\n");
  EXPECT_EQ(c.read_line(), "DONE\n");
  EXPECT_EQ(c.read_line(), "AADONE\n");
  for (char byte : std::string_view("BURN 4\nPING\n")) ASSERT_TRUE(c.send(std::string_view(&byte, 1)));
  EXPECT_EQ(c.read_line(), "RESULT 10\n");
  EXPECT_EQ(c.read_line(), "PONG\n");
}

TEST_P(Conformance, HalfCloseAnswersEverythingThenCloses) {
  Client c(port());
  ASSERT_TRUE(c.send("PING\nWAIT 50\nSTREAM 1\nPING"));  // the partial last line is ignored
  c.shutdown_write();
  EXPECT_EQ(c.read_line(), "PONG\n");
  EXPECT_EQ(c.read_line(), "DONE\n");
  EXPECT_EQ(c.read_line(), "ADONE\n");
  EXPECT_TRUE(c.closed_by_peer());
}

TEST_P(Conformance, ConcurrentClients) {
  const int clients = 8, rounds = 200 / kSlowdown;
  std::atomic<int> good{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < clients; ++t)
    threads.emplace_back([&, t] {
      Client c(port());
      bool ok = c.connected();
      for (int i = 0; i < rounds && ok; ++i) {
        ok = c.send("PING\nBURN " + std::to_string(t) + "\nSTREAM 100\n") && c.read_line() == "PONG\n" &&
             c.read_line() == "RESULT " + std::to_string(t * (t + 1) / 2) + "\n" &&
             c.read_exact(100) == std::string(100, 'A') && c.read_line() == "DONE\n";
      }
      good += ok;
    });
  for (auto& t : threads) t.join();
  EXPECT_EQ(good.load(), clients);
}

TEST_P(Conformance, StopLetsTheRequestInFlightFinish) {
  // An idle connection besides the busy one, where the server serves
  // connections concurrently (the iterative one would never get to it).
  bool concurrent = GetParam().expect(common::Scenario::kWait) == common::Outcome::kAnswered;
  Client busy(port());
  std::optional<Client> idle;
  if (concurrent) {
    idle.emplace(port());
    ASSERT_TRUE(idle->send("PING\n"));
    ASSERT_EQ(idle->read_line(), "PONG\n");
  }
  ASSERT_TRUE(busy.send("WAIT 500\n"));
  std::this_thread::sleep_for(150ms);
  auto start = Clock::now();
  ::kill(server_->pid(), SIGTERM);
  EXPECT_EQ(busy.read_line(), "DONE\n");
  if (idle) {
    EXPECT_TRUE(idle->closed_by_peer());
  }
  EXPECT_TRUE(busy.closed_by_peer());
  EXPECT_EQ(server_->stop(3000ms * kSlowdown), std::optional<int>(0));
  EXPECT_LT(Clock::now() - start, 1900ms * kSlowdown) << "idle connections should not wait for the drain bound";
}

TEST_P(Conformance, HelpAndBadFlags) {
  EXPECT_EQ(run_to_exit(GetParam().name, {"--help"}), 0);
  EXPECT_EQ(run_to_exit(GetParam().name, {"--bogus"}), 2);
  EXPECT_EQ(run_to_exit(GetParam().name, {"--port", "65536"}), 2);
  EXPECT_EQ(run_to_exit(GetParam().name, {"--host", "localhost:1"}), 2);
  EXPECT_EQ(run_to_exit(GetParam().name, {"--port"}), 2);
}

INSTANTIATE_TEST_SUITE_P(Servers, Conformance, ::testing::ValuesIn(rows(common::Protocol::kDumb)),
                         [](const auto& info) { return row_name(info.param); });

}  // namespace
