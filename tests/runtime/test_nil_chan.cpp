// Nil channels (a null shared_ptr): never ready in select, send and receive
// block forever and count toward the deadlock report, as in Go.
#include <memory>
#include <stdexcept>

#include "support.h"

using namespace std::chrono_literals;
using gort_test::WorkersTest;

class NilChan : public WorkersTest {
 protected:
  void SetUp() override { GTEST_FLAG_SET(death_test_style, "threadsafe"); }
};
GORT_INSTANTIATE(NilChan);

TEST_P(NilChan, NeverReadyInSelect) {
  run([] {
    std::shared_ptr<gort::Chan<int>> nil;
    auto ready = gort::make_chan<int>(1);
    ready->send(5);
    int got = 0;
    for (int i = 0; i < 20; ++i) {
      if (i > 0) ready->send(5);
      int chosen = gort::select(gort::on_recv(nil, [](std::optional<int>) { ADD_FAILURE(); }),
                                gort::on_send(nil, 1, [] { ADD_FAILURE(); }),
                                gort::on_recv(ready, [&](std::optional<int> v) { got = *v; }));
      EXPECT_EQ(chosen, 2);
      EXPECT_EQ(got, 5);
    }
    EXPECT_EQ(gort::select(gort::on_recv(nil), gort::on_default()), 1);
  });
}

TEST_P(NilChan, SwitchesACaseOff) {
  // Go's idiom: set a drained channel to nil to stop selecting on it.
  run([] {
    auto a = gort::make_chan<int>(3);
    auto b = gort::make_chan<int>(3);
    for (int i = 0; i < 3; ++i) a->send(i), b->send(10 + i);
    a->close();
    b->close();
    int sum = 0;
    while (a || b) {
      gort::select(gort::on_recv(a, [&](std::optional<int> v) { v ? void(sum += *v) : a.reset(); }),
                   gort::on_recv(b, [&](std::optional<int> v) { v ? void(sum += *v) : b.reset(); }));
    }
    EXPECT_EQ(sum, 0 + 1 + 2 + 10 + 11 + 12);
  });
}

TEST_P(NilChan, CloseOfNilThrows) {
  run([] {
    std::shared_ptr<gort::Chan<int>> nil;
    EXPECT_THROW(gort::close(nil), std::invalid_argument);
    auto c = gort::make_chan<int>(1);
    gort::send(c, 3);
    EXPECT_EQ(gort::recv(c), 3);
    gort::close(c);
    EXPECT_EQ(gort::recv(c), std::nullopt);
  });
}

TEST_P(NilChan, ReceiveBlocksForeverAndIsADeadlock) {
  int n = workers();
  EXPECT_EXIT(gort::run(gort::Config{.workers = n},
                        [] {
                          std::shared_ptr<gort::Chan<int>> nil;
                          gort::recv(nil);
                        }),
              ::testing::ExitedWithCode(2), "fatal error: all fibers are asleep - deadlock!");
}

TEST_P(NilChan, SendBlocksForeverAndIsADeadlock) {
  int n = workers();
  EXPECT_EXIT(gort::run(gort::Config{.workers = n},
                        [] {
                          std::shared_ptr<gort::Chan<int>> nil;
                          gort::send(nil, 1);
                        }),
              ::testing::ExitedWithCode(2), "fatal error: all fibers are asleep - deadlock!");
}

TEST_P(NilChan, SelectOverOnlyNilChannelsIsADeadlock) {
  int n = workers();
  EXPECT_EXIT(gort::run(gort::Config{.workers = n},
                        [] {
                          std::shared_ptr<gort::Chan<int>> nil;
                          gort::select(gort::on_recv(nil), gort::on_send(nil, 2));
                        }),
              ::testing::ExitedWithCode(2), "fatal error: all fibers are asleep - deadlock!");
}
