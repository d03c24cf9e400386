// tests/abuse/test_abuse_dumb.cpp -- the abuse suite against every DUMB
// server of apps/dumb/servers.def: what an outside attacker can send or do
// over TCP, each case ending with the checks of abuse.h (alive, a bystander
// answered, descriptors back to the baseline, memory bounded).
//
// A bystander that arrives *while* an attack holds connections open is
// answered only if the architecture serves that many connections at once
// (servers.def's concurrency column): the iterative server serves one, the
// pools a few, the others all.  Where it cannot by design, the case expects
// the bystander to wait and checks it is answered once the attack ends.
// docs/SERVERS.md ("Abuse") has the table.

#include <gtest/gtest.h>

#include <random>
#include <thread>

#include "abuse.h"

namespace {

using namespace abuse;
using common::Concurrency;

// A bystander must wait rather than be answered within this (degraded by design).
constexpr milliseconds kStarvedFor = 300ms;
// Connections the smallest pool serves at once (dumb_prefork's default workers).
constexpr int kSmallestPool = 4;

class Abuse : public ::testing::TestWithParam<common::ServerRow> {
 protected:
  static void SetUpTestSuite() { raise_open_files_limit(); }

  void start(std::vector<std::string> args = {}, Limits limits = {}) {
    args.insert(args.end(), {"--drain-ms", "1000"});
    server_ = std::make_unique<ServerProcess>(GetParam().name, args, limits);
    ASSERT_NE(server_->port(), 0);
    ASSERT_TRUE(dumb_ping(port(), kAnswerBound)) << "no PONG before any attack";
    baseline_fds_ = settled_open_fds(*server_);
    baseline_rss_ = server_->tree_rss_kib();
  }
  void TearDown() override {
    if (!server_ || server_->port() == 0) return;
    EXPECT_EQ(server_->stop(5000ms * kSlowdown), std::optional<int>(0));
  }
  std::uint16_t port() const { return server_->port(); }

  // Can this server answer a bystander while `held` connections occupy it?
  bool serves_alongside(int held) const {
    switch (GetParam().concurrency) {
      case Concurrency::kOne: return held == 0;
      case Concurrency::kPool: return held < kSmallestPool;
      case Concurrency::kAll: return true;
    }
    return true;
  }
  // The bystander check while the attack holds `held` connections.
  void expect_bystander_during(int held) {
    if (serves_alongside(held)) {
      EXPECT_TRUE(dumb_ping(port(), kAnswerBound)) << "a bystander was not answered during the attack";
    } else {
      EXPECT_FALSE(dumb_ping(port(), kStarvedFor))
          << "answered, though the table says it serves " << held << " connections no faster";
    }
  }
  // The checks once the attack is over.  A server may still be working
  // through the attack's backlog (refusing, if it refuses when full): the
  // bystander tries again until kAnswerBound.
  void expect_recovered_after() {
    EXPECT_TRUE(eventually(kAnswerBound, [&] { return dumb_ping(port(), kAnswerBound / 4).has_value(); }))
        << "no bystander answered after the attack";
    abuse::expect_recovered(*server_, baseline_fds_, baseline_rss_);
  }
  void expect_rss_bounded_now() {
    long rss = server_->tree_rss_kib();
    EXPECT_LE(rss, baseline_rss_ + kRssGrowthKib) << "during the attack";
  }

  std::unique_ptr<ServerProcess> server_;
  int baseline_fds_ = 0;
  long baseline_rss_ = 0;
};

TEST_P(Abuse, TenMegabyteLineWithoutNewline) {
  start();
  Socket attacker(port());
  ASSERT_TRUE(attacker.valid());
  std::string chunk(1 << 20, 'x');
  std::size_t sent = 0;
  for (int i = 0; i < 10; ++i) sent += attacker.send(chunk, 5000ms * kSlowdown);
  EXPECT_EQ(sent, 10u << 20) << "the server stopped reading an overlong line";
  expect_rss_bounded_now();
  attacker.send("\n");
  EXPECT_EQ(attacker.receive(64, kAnswerBound), "ERROR line too long\n");
  expect_bystander_during(1);
  attacker.close();
  expect_recovered_after();
}

TEST_P(Abuse, BinaryGarbageWithNulBytes) {
  start();
  Socket attacker(port());
  ASSERT_TRUE(attacker.valid());
  std::mt19937 random(18);
  std::string garbage(256 * 1024, '\0');
  for (auto& c : garbage) c = static_cast<char>(random() % 4 == 0 ? 0 : random());
  // Lines are rare in it (one byte in 256 is '\n'): few replies, none left unread long.
  attacker.send(garbage, 5000ms * kSlowdown);
  attacker.send("\nPING\n");
  std::string replies;
  EXPECT_TRUE(eventually(kAnswerBound, [&] {
    replies += attacker.receive(1 << 20, 50ms);
    return replies.size() >= 5 && replies.compare(replies.size() - 5, 5, "PONG\n") == 0;
  })) << "no PONG after the garbage";
  expect_bystander_during(1);
  attacker.close();
  expect_recovered_after();
}

TEST_P(Abuse, PipelinedRequestsNeverRead) {
  start();
  Socket attacker(port(), /*rcvbuf=*/4096);
  ASSERT_TRUE(attacker.valid());
  std::string pings;
  for (int i = 0; i < 1'000'000 / kScale; ++i) pings += "PING\n";
  // The server stops reading once its replies back up (loopback's socket
  // buffers may hold all of this); what it must not do is buffer them.
  attacker.send(pings, 1000ms);
  expect_rss_bounded_now();
  expect_bystander_during(1);
  attacker.reset();
  expect_recovered_after();
}

TEST_P(Abuse, SlowlorisConnections) {
  start();
  // Below select's FD_SETSIZE with the server's own descriptors: past it
  // dumb_select refuses connections by design.
  const int n = 1000 / kScale;
  auto attackers = open_many(port(), n);
  for (auto& s : attackers) s.send("PI");
  expect_bystander_during(static_cast<int>(attackers.size()));
  for (auto& s : attackers) s.send("N");
  expect_rss_bounded_now();
  attackers.clear();
  expect_recovered_after();
}

TEST_P(Abuse, StreamsNeverRead) {
  start();
  const int n = 100 / kScale;
  auto attackers = open_many(port(), n, /*rcvbuf=*/4096);
  for (auto& s : attackers) s.send("STREAM 1073741824\n");
  std::this_thread::sleep_for(200ms);  // the servers fill every socket buffer
  expect_rss_bounded_now();
  expect_bystander_during(n);
  for (auto& s : attackers) s.reset();
  attackers.clear();
  expect_recovered_after();
}

TEST_P(Abuse, ResetsInTheMiddleOfAStream) {
  start();
  const int n = 300 / kScale, batch = 30;
  for (int done = 0; done < n; done += batch) {
    auto attackers = open_many(port(), batch);
    for (auto& s : attackers) s.send("STREAM 1073741824\n");
    for (auto& s : attackers) {
      (void)s.receive(64 * 1024, 100ms);  // some of the body: the server is writing
      s.reset();
    }
  }
  expect_recovered_after();
}

TEST_P(Abuse, ConnectCloseCycles) {
  start();
  const int n = 20'000 / kScale;
  int connected = 0;
  for (int i = 0; i < n; ++i) {
    Socket s(port());
    connected += s.valid();
    // Most leave with a reset, so the client side does not pile up
    // TIME_WAIT sockets and run out of ephemeral ports; some close.
    if (i % 16 != 0) s.reset();
  }
  EXPECT_GE(connected, n * 9 / 10);
  expect_recovered_after();
}

TEST_P(Abuse, DescriptorExhaustionAndRecovery) {
  start({}, Limits{64});
  const int n = 200;  // far past the limit: connections are refused or wait in the backlog
  auto attackers = open_many(port(), n);
  for (auto& s : attackers) s.send("PING\n");
  std::this_thread::sleep_for(300ms);
  attackers.clear();  // all leave at once
  // While the server works through the closed connections it may still
  // refuse a newcomer (busy); within kAnswerBound it must answer one.
  auto left = Clock::now();
  bool answered = eventually(kAnswerBound, [&] { return dumb_ping(port(), kAnswerBound / 4).has_value(); });
  EXPECT_TRUE(answered) << "after the attackers left, no new client was answered";
  if (answered)
    RecordProperty("ms_to_first_answer",
                   static_cast<int>(std::chrono::duration_cast<milliseconds>(Clock::now() - left).count()));
  expect_recovered_after();
}

TEST_P(Abuse, PeersLeaveDuringWait) {
  // Each connection sends WAIT 60000 and resets: a server that held them for
  // the WAIT would run out of its 64 descriptors and answer no one for 60 s.
  start({}, Limits{64});
  const int n = 200, batch = 40;
  for (int done = 0; done < n; done += batch) {
    auto attackers = open_many(port(), batch);
    for (auto& s : attackers) s.send("WAIT 60000\n");
    std::this_thread::sleep_for(50ms);  // the server reads the WAITs
    for (auto& s : attackers) s.reset();
  }
  EXPECT_TRUE(eventually(kAnswerBound, [&] { return dumb_ping(port(), kAnswerBound / 4).has_value(); }))
      << "peers that left still hold the server";
  expect_recovered_after();
}

TEST_P(Abuse, SigtermHitsTheDrainBound) {
  start();
  Socket waiting(port()), streaming(port(), /*rcvbuf=*/4096);
  waiting.send("WAIT 60000\n");
  streaming.send("STREAM 1073741824\n");
  std::this_thread::sleep_for(200ms);
  EXPECT_EQ(server_->stop(1000ms + 4000ms * kSlowdown), std::optional<int>(0)) << "no exit 0 within the drain bound";
}

INSTANTIATE_TEST_SUITE_P(Servers, Abuse, ::testing::ValuesIn(rows(common::Protocol::kDumb)),
                         [](const auto& info) { return row_name(info.param); });

}  // namespace
