// tests/apps/test_chat.cpp -- the chat protocol (apps/chat/room.h) against
// every chat server in apps/chat/servers.def.

#include <gtest/gtest.h>

#include <atomic>
#include <thread>

#include "server_harness.h"

namespace {

using namespace harness;

class Chat : public ::testing::TestWithParam<common::ServerRow> {
 protected:
  void SetUp() override {
    server_ = std::make_unique<ServerProcess>(GetParam().name);
    ASSERT_NE(server_->port(), 0);
  }
  void TearDown() override {
    if (!server_ || server_->port() == 0) return;
    EXPECT_EQ(server_->stop(3000ms * kSlowdown), std::optional<int>(0));
  }
  // Connects and checks the greeting; ids count from 1 in connection order.
  std::unique_ptr<Client> join(int expected_id, int rcvbuf = 0) {
    auto c = std::make_unique<Client>(server_->port(), 5000ms * kSlowdown, rcvbuf);
    EXPECT_EQ(c->read_line(), "Welcome chat user no. " + std::to_string(expected_id) + "!\n");
    return c;
  }
  std::unique_ptr<ServerProcess> server_;
};

TEST_P(Chat, LinesGoToEveryOtherClient) {
  auto a = join(1), b = join(2), c = join(3);
  ASSERT_TRUE(a->send("hello\n"));
  EXPECT_EQ(b->read_line(), "[User 1]: hello\n");
  EXPECT_EQ(c->read_line(), "[User 1]: hello\n");
  ASSERT_TRUE(c->send("hi there\r\n"));  // CRLF works; the CR is not relayed
  EXPECT_EQ(a->read_line(), "[User 3]: hi there\n");
  EXPECT_EQ(b->read_line(), "[User 3]: hi there\n");
  EXPECT_TRUE(a->silent_for(100ms)) << "a sender does not get its own lines back";
  EXPECT_TRUE(c->silent_for(10ms));
}

TEST_P(Chat, LinesSplitAcrossWritesAndEmptyLines) {
  auto a = join(1), b = join(2);
  a->set_nodelay();
  for (std::string_view piece : {"par", "tial li", "ne\n\nx"}) {
    ASSERT_TRUE(a->send(piece));
    std::this_thread::sleep_for(20ms);
  }
  EXPECT_EQ(b->read_line(), "[User 1]: partial line\n");
  EXPECT_EQ(b->read_line(), "[User 1]: \n");
  EXPECT_TRUE(b->silent_for(100ms)) << "'x' has no newline yet";
}

TEST_P(Chat, OverlongLineIsRefusedToItsSenderOnly) {
  auto a = join(1), b = join(2);
  ASSERT_TRUE(a->send(std::string(1024, 'm') + "\n" + std::string(5000, 'x') + "\nafter\n"));
  EXPECT_EQ(b->read_line(), "[User 1]: " + std::string(1024, 'm') + "\n");
  EXPECT_EQ(a->read_line(), "ERROR line too long\n");
  EXPECT_EQ(b->read_line(), "[User 1]: after\n");
}

TEST_P(Chat, ADepartureDoesNotDisturbTheRoom) {
  auto a = join(1), b = join(2);
  {
    auto c = join(3);
    ASSERT_TRUE(c->send("bye\nunfinished"));
  }
  EXPECT_EQ(a->read_line(), "[User 3]: bye\n");
  EXPECT_EQ(b->read_line(), "[User 3]: bye\n");
  auto d = join(4);
  ASSERT_TRUE(b->send("still here\n"));
  EXPECT_EQ(a->read_line(), "[User 2]: still here\n");
  EXPECT_EQ(d->read_line(), "[User 2]: still here\n");
}

TEST_P(Chat, ASlowClientIsDisconnectedNotWaitedFor) {
  auto talker = join(1), listener = join(2);
  auto sleeper = join(3, /*rcvbuf=*/4096);  // never reads
  const int lines = 1000, burst = 50;       // 1 MB in all: far more than the sleeper's queue and buffers
  std::string line(1000, 'z');
  std::atomic<int> received{0};
  std::thread reader([&] {
    for (; received < lines; ++received)
      if (listener->read_line() != "[User 1]: " + line + "\n") break;
  });
  // The listener keeps up: the talker sends a burst, then waits for it.
  for (int sent = 0; sent < lines && received == sent;) {
    for (int i = 0; i < burst; ++i, ++sent) ASSERT_TRUE(talker->send(line + "\n"));
    auto deadline = Clock::now() + 5s * kSlowdown;
    while (received < sent && Clock::now() < deadline) std::this_thread::sleep_for(1ms);
  }
  reader.join();
  EXPECT_EQ(received.load(), lines) << "a client that keeps up must get every line";
  EXPECT_TRUE(sleeper->closed_by_peer()) << "the client that does not read must be dropped";
}

INSTANTIATE_TEST_SUITE_P(Servers, Chat, ::testing::ValuesIn(rows(common::Protocol::kChat)),
                         [](const auto& info) { return row_name(info.param); });

}  // namespace
