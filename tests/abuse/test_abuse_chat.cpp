// tests/abuse/test_abuse_chat.cpp -- the abuse suite against every chat
// server of apps/chat/servers.def (abuse.h has the pattern; the bystander
// is a pair of fresh clients, one relaying a line to the other).

#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <thread>

#include <poll.h>
#include <signal.h>
#include <sys/socket.h>

#include "abuse.h"

namespace {

using namespace abuse;

class ChatAbuse : public ::testing::TestWithParam<common::ServerRow> {
 protected:
  static void SetUpTestSuite() { raise_open_files_limit(); }

  void SetUp() override {
    server_ = std::make_unique<ServerProcess>(GetParam().name, std::vector<std::string>{"--drain-ms", "1000"});
    ASSERT_NE(server_->port(), 0);
    ASSERT_TRUE(chat_relay(port(), kAnswerBound)) << "no relay before any attack";
    std::this_thread::sleep_for(50ms);  // the bystanders' departure is processed
    baseline_fds_ = settled_open_fds(*server_);
    baseline_rss_ = server_->tree_rss_kib();
  }
  void TearDown() override {
    if (!server_ || server_->port() == 0) return;
    EXPECT_EQ(server_->stop(5000ms * kSlowdown), std::optional<int>(0));
  }
  std::uint16_t port() const { return server_->port(); }
  void expect_bystanders_served() {
    EXPECT_TRUE(chat_relay(port(), kAnswerBound)) << "a line between two bystanders was not relayed";
  }
  void expect_recovered_after() {
    expect_bystanders_served();
    abuse::expect_recovered(*server_, baseline_fds_, baseline_rss_);
  }

  std::unique_ptr<ServerProcess> server_;
  int baseline_fds_ = 0;
  long baseline_rss_ = 0;
};

TEST_P(ChatAbuse, JoinLeaveChurn) {
  const int n = 2000 / kScale, batch = 100;
  for (int done = 0; done < n; done += batch) {
    auto clients = open_many(port(), batch);
    for (std::size_t i = 0; i < clients.size(); i += 2) clients[i].reset();  // half leave with a reset
  }
  expect_recovered_after();
}

// Clients that come and go while the server is not running (stopped here,
// as a loaded machine might deschedule it) pile up in its backlog; the
// newcomers behind them are still welcomed.  More than FD_SETSIZE of them:
// a server that accepted the whole backlog before reaping the departed
// would run out of select()able descriptors.  Not scaled down: while the
// server is stopped only the kernel does work.
TEST_P(ChatAbuse, ChurnWhileTheServerIsStopped) {
  const int n = 1200, batch = 100;
  ASSERT_EQ(kill(server_->pid(), SIGSTOP), 0);
  for (int done = 0; done < n; done += batch) {
    auto clients = open_many(port(), batch);
    for (std::size_t i = 0; i < clients.size(); i += 2) clients[i].reset();
  }
  bool resumed = false;
  EXPECT_TRUE(chat_relay(port(), kAnswerBound, [&] { resumed = kill(server_->pid(), SIGCONT) == 0; }))
      << "a line between two newcomers behind the backlog was not relayed";
  if (!resumed) {
    ASSERT_EQ(kill(server_->pid(), SIGCONT), 0);
  }
  abuse::expect_recovered(*server_, baseline_fds_, baseline_rss_);
}

TEST_P(ChatAbuse, MegabyteLines) {
  Socket attacker(port());
  ASSERT_TRUE(attacker.valid());
  std::string line(1 << 20, 'x');
  line.push_back('\n');
  int refused = 0;
  std::string replies;
  for (int i = 0; i < 4; ++i) {
    EXPECT_EQ(attacker.send(line, 5000ms * kSlowdown), line.size());
    replies += attacker.receive(65536, 10ms);
  }
  EXPECT_TRUE(eventually(kAnswerBound,
                         [&] {
                           replies += attacker.receive(65536, 10ms);
                           for (std::size_t at; (at = replies.find("ERROR line too long\n")) != std::string::npos;
                                ++refused)
                             replies.erase(0, at + 20);
                           return refused == 4;
                         }))
      << refused << " of 4 overlong lines refused";
  expect_bystanders_served();
  attacker.close();
  expect_recovered_after();
}

TEST_P(ChatAbuse, DisconnectsMidLine) {
  Socket listener(port());
  ASSERT_TRUE(listener.valid());
  const int n = 200 / kScale;
  auto leavers = open_many(port(), n);
  for (std::size_t i = 0; i < leavers.size(); ++i) {
    leavers[i].send("half a line that never ends");
    if (i % 2) leavers[i].reset();
  }
  leavers.clear();
  expect_bystanders_served();
  std::string heard;
  for (std::string more; !(more = listener.receive(65536, 100ms)).empty();) heard += more;
  EXPECT_EQ(heard.find("never ends"), std::string::npos) << "a partial line was relayed";
  listener.close();
  expect_recovered_after();
}

// ------------------------------------------------------- slow readers ---

// Writers at kLinesPerSecond each, readers that keep up, and clients that
// never read, all in one room: the readers must get every line, promptly,
// and never be dropped; the room must not wait on the clients that do not
// read (issue 18, defect 3).
constexpr int kSlowReaders = 100;
constexpr int kWriters = 4;
constexpr int kReaders = 4;
// Within what the single-threaded rooms (select_chat, epoll_chat: a write
// per message per client) sustain on one core beside the test's own threads;
// still enough that the clients that do not read fill their queues within
// the run.  chat_fiber also meets the 2 000 lines/s (docs/SERVERS.md).
constexpr int kLinesPerSecond = 500 / kScale;
constexpr milliseconds kSpeaking = 2000ms;
constexpr int kLinesEach = static_cast<int>(kLinesPerSecond * kSpeaking.count() / 1000);
// Generous against the 50 ms target: the test's own threads share the two
// CPUs with the server.
constexpr milliseconds kP99Bound = 500ms * kSlowdown;

std::int64_t now_us() {
  return std::chrono::duration_cast<std::chrono::microseconds>(Clock::now().time_since_epoch()).count();
}

// Reads a room's lines from `s` until `want` lines stamped "t=<us>" arrived
// (or nothing arrives for a while); returns the latencies in microseconds.
std::vector<std::int64_t> read_stamped(Socket& s, int want, std::atomic<bool>& dropped) {
  std::vector<std::int64_t> latencies;
  std::string pending;
  while (static_cast<int>(latencies.size()) < want) {
    std::string more = s.receive(65536, 3000ms * kSlowdown);
    if (more.empty()) {
      dropped = true;
      break;
    }
    pending += more;
    std::size_t start = 0;
    for (std::size_t nl; (nl = pending.find('\n', start)) != std::string::npos; start = nl + 1) {
      std::string_view line(pending.data() + start, nl - start);
      if (line.find("not reading") != std::string_view::npos) dropped = true;
      auto t = line.find("t=");
      if (t != std::string_view::npos) latencies.push_back(now_us() - std::stoll(std::string(line.substr(t + 2))));
    }
    pending.erase(0, start);
  }
  return latencies;
}

// Sends kLinesEach stamped lines at kLinesPerSecond, reading (and counting)
// what the room sends meanwhile so that the writer itself keeps up.
void speak(Socket& s, int id, std::atomic<int>& heard) {
  auto start = Clock::now();
  std::string inbox;
  for (int sent = 0; sent < kLinesEach;) {
    auto due = static_cast<int>(std::chrono::duration_cast<milliseconds>(Clock::now() - start).count() *
                                kLinesPerSecond / 1000);
    std::string burst;
    for (; sent < std::min(due, kLinesEach); ++sent)
      burst +=
          "writer " + std::to_string(id) + " line " + std::to_string(sent) + " t=" + std::to_string(now_us()) + "\n";
    if (!burst.empty()) s.send(burst);
    std::string more = s.receive(65536, 1ms);
    heard += static_cast<int>(std::count(more.begin(), more.end(), '\n'));
  }
  for (std::string more; !(more = s.receive(65536, 200ms)).empty();)
    heard += static_cast<int>(std::count(more.begin(), more.end(), '\n'));
}

TEST_P(ChatAbuse, SlowReadersDoNotStallTheRoom) {
  std::vector<Socket> readers;
  for (int i = 0; i < kReaders; ++i) readers.emplace_back(port());
  auto slow = open_many(port(), kSlowReaders, /*rcvbuf=*/4096);
  ASSERT_EQ(static_cast<int>(slow.size()), kSlowReaders);
  std::vector<Socket> writers;
  for (int i = 0; i < kWriters; ++i) writers.emplace_back(port());
  // A reader hears only what is said after it joined: nobody speaks before
  // every reader has its welcome.
  for (auto& reader : readers) ASSERT_TRUE(await_welcome(reader, kAnswerBound)) << "a reader was not welcomed";

  const int want = kWriters * kLinesEach;
  std::vector<std::vector<std::int64_t>> latencies(kReaders);
  std::atomic<bool> dropped{false};
  std::atomic<int> heard{0};
  std::vector<std::thread> threads;
  for (int i = 0; i < kReaders; ++i)
    threads.emplace_back([&, i] { latencies[i] = read_stamped(readers[i], want, dropped); });
  for (int i = 0; i < kWriters; ++i) threads.emplace_back([&, i] { speak(writers[i], i, heard); });
  for (auto& t : threads) t.join();

  EXPECT_FALSE(dropped) << "a client that reads was dropped or left waiting";
  if (dropped) server_->print_threads_and_fibers();
  std::vector<std::int64_t> all;
  for (auto& l : latencies) {
    EXPECT_EQ(static_cast<int>(l.size()), want) << "a reading client missed lines";
    all.insert(all.end(), l.begin(), l.end());
  }
  ASSERT_FALSE(all.empty());
  std::sort(all.begin(), all.end());
  auto at = [&](double q) { return all[std::min(all.size() - 1, static_cast<std::size_t>(q * all.size()))]; };
  std::printf("%s: latency to reading clients over %zu lines: p50 %.1f ms, p99 %.1f ms, max %.1f ms\n",
              std::string(GetParam().name).c_str(), all.size(), at(0.5) / 1e3, at(0.99) / 1e3, all.back() / 1e3);
  RecordProperty("p99_us", static_cast<int>(at(0.99)));
  EXPECT_LE(at(0.99), std::chrono::duration_cast<std::chrono::microseconds>(kP99Bound).count());
  slow.clear();
  readers.clear();
  writers.clear();
  expect_recovered_after();
}

INSTANTIATE_TEST_SUITE_P(Servers, ChatAbuse, ::testing::ValuesIn(rows(common::Protocol::kChat)),
                         [](const auto& info) { return row_name(info.param); });

}  // namespace
