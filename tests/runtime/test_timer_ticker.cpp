// gort::Timer, gort::Ticker and gort::after_func: firing, stop and reset
// (no stale value after either), ticks on a grid that drop for a slow
// reader, f in a fiber of its own, misuse. Bounds are generous.
#include <gort/timer.h>

#include <atomic>
#include <stdexcept>

#include "support.h"

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;
using gort_test::kScale;
using gort_test::WorkersTest;

class TimerTicker : public WorkersTest {};
GORT_INSTANTIATE(TimerTicker);

TEST_P(TimerTicker, TimerFiresOnceAfterItsDuration) {
  run([] {
    auto start = Clock::now();
    gort::Timer t(30ms);
    auto fired = t.chan()->recv();
    ASSERT_TRUE(fired.has_value());
    EXPECT_GE(*fired - start, 30ms);
    EXPECT_GE(Clock::now() - start, 30ms);
    EXPECT_LT(Clock::now() - start, 5s);
    EXPECT_FALSE(t.stop());  // already fired
    gort::sleep_for(20ms);
    EXPECT_FALSE(t.chan()->try_recv().has_value());  // once only
  });
}

TEST_P(TimerTicker, StopBeforeFiringDeliversNothing) {
  run([] {
    gort::Timer t(20ms);
    EXPECT_TRUE(t.stop());
    EXPECT_FALSE(t.stop());
    gort::sleep_for(60ms);
    EXPECT_FALSE(t.chan()->try_recv().has_value());
  });
}

TEST_P(TimerTicker, StopAfterFiringDiscardsTheUnreadValue) {
  run([] {
    gort::Timer t(1ms);
    gort::sleep_for(30ms);  // fired; its value waits in the channel
    EXPECT_FALSE(t.stop());
    EXPECT_FALSE(t.chan()->try_recv().has_value());  // Go 1.23: no stale value
  });
}

TEST_P(TimerTicker, ResetMovesTheFiringAndDropsTheOldValue) {
  run([] {
    gort::Timer t(1h);
    auto start = Clock::now();
    EXPECT_TRUE(t.reset(40ms));
    ASSERT_TRUE(t.chan()->recv().has_value());
    EXPECT_GE(Clock::now() - start, 40ms);
    EXPECT_FALSE(t.reset(1ms));  // had fired
    gort::sleep_for(30ms);
    EXPECT_FALSE(t.reset(1h));  // fired again, value unread: discarded by reset
    EXPECT_FALSE(t.chan()->try_recv().has_value());
  });
}

TEST_P(TimerTicker, TimerWorksAsASelectCase) {
  run([] {
    gort::Chan<int> never;
    gort::Timer t(10ms);
    int chosen = gort::select(gort::on_recv(never), gort::on_recv(t.chan()));
    EXPECT_EQ(chosen, 1);
  });
}

TEST_P(TimerTicker, ManyTimersStoppedAndResetConcurrently) {
  run([] {
    const int n = 200 / kScale;
    gort::WaitGroup wg;
    std::atomic<int> fired{0};
    for (int i = 0; i < n; ++i) {
      wg.add(1);
      go_spawn([&, i] {
        gort::Timer t(std::chrono::microseconds(50 * (i % 7)));
        for (int k = 0; k < 20; ++k) {
          if (k % 2) {
            t.stop();
          } else {
            t.reset(std::chrono::microseconds(10 * (k % 5)));
          }
        }
        t.reset(1ms);
        if (t.chan()->recv()) fired.fetch_add(1);
        wg.done();
      });
    }
    wg.wait();
    EXPECT_EQ(fired.load(), n);
  });
}

TEST_P(TimerTicker, TickerTicksRepeatedlyWithoutDrift) {
  run([] {
    auto start = Clock::now();
    gort::Ticker tick(10ms);
    Clock::time_point last{};
    for (int i = 0; i < 10; ++i) {
      auto t = tick.chan()->recv();
      ASSERT_TRUE(t.has_value());
      EXPECT_GT(*t, last);
      last = *t;
    }
    // Ten ticks on a 10 ms grid take at least 100 ms, whatever the jitter.
    EXPECT_GE(Clock::now() - start, 100ms);
    EXPECT_LT(Clock::now() - start, 10s);
    tick.stop();
    tick.chan()->try_recv();
    gort::sleep_for(30ms);
    EXPECT_FALSE(tick.chan()->try_recv().has_value());
  });
}

TEST_P(TimerTicker, TickerDropsTicksForASlowReader) {
  run([] {
    gort::Ticker tick(5ms);
    gort::sleep_for(100ms);  // ~20 ticks due; the channel holds one
    EXPECT_EQ(tick.chan()->size(), 1u);
    auto start = Clock::now();
    ASSERT_TRUE(tick.chan()->recv());  // the buffered one, at once
    ASSERT_TRUE(tick.chan()->recv());  // the next one on the grid, not a burst
    EXPECT_LT(Clock::now() - start, 5s);
    EXPECT_LE(tick.chan()->size(), 1u);
  });
}

TEST_P(TimerTicker, TickerResetChangesThePeriod) {
  run([] {
    gort::Ticker tick(1h);
    // Taken before reset: the ticks fall on a grid from the reset's own now.
    auto start = Clock::now();
    tick.reset(5ms);
    for (int i = 0; i < 3; ++i) ASSERT_TRUE(tick.chan()->recv());
    EXPECT_GE(Clock::now() - start, 15ms);
    EXPECT_THROW(tick.reset(0ms), std::invalid_argument);
  });
}

TEST_P(TimerTicker, AfterFuncRunsInItsOwnFiber) {
  run([] {
    auto done = gort::make_chan<uint64_t>(1);
    uint64_t me = gort::fiber_id();
    gort::Timer t = gort::after_func(10ms, [done] { done->send(gort::fiber_id()); });
    EXPECT_EQ(t.chan(), nullptr);  // Go: an AfterFunc timer's C is nil
    auto id = done->recv();
    ASSERT_TRUE(id.has_value());
    EXPECT_NE(*id, me);
    EXPECT_NE(*id, 0u);
  });
}

TEST_P(TimerTicker, AfterFuncStoppedNeverRuns) {
  run([] {
    std::atomic<bool> ran{false};
    gort::Timer t = gort::after_func(30ms, [&ran] { ran = true; });
    EXPECT_TRUE(t.stop());
    gort::sleep_for(80ms);
    EXPECT_FALSE(ran.load());
  });
}

TEST_P(TimerTicker, AfterFuncOutlivesItsHandle) {
  run([] {
    auto done = gort::make_chan<int>(1);
    {
      gort::after_func(5ms, [done] { done->send(1); });
    }  // handle dropped at once
    EXPECT_EQ(done->recv(), 1);
  });
}

TEST_P(TimerTicker, DroppedTimerAndTickerStop) {
  run([] {
    std::shared_ptr<gort::Chan<Clock::time_point>> c1, c2;
    {
      gort::Timer t(5ms);
      gort::Ticker k(5ms);
      c1 = t.chan();
      c2 = k.chan();
    }
    gort::sleep_for(40ms);
    EXPECT_FALSE(c1->try_recv().has_value());
    EXPECT_FALSE(c2->try_recv().has_value());
  });
}

TEST_P(TimerTicker, PendingTimersAreFreedWhenTheRuntimeStops) {
  // Leak checks (ASan) catch a timer or channel left behind.
  run([] {
    (void)gort::after(1h);
    gort::after_func(1h, [] {});
    static gort::Timer* kept = nullptr;
    kept = new gort::Timer(1h);
    delete kept;
  });
}

TEST_P(TimerTicker, Misuse) {
  run([] {
    gort::Timer t(1h);
    gort::Timer moved = std::move(t);
    EXPECT_THROW(t.stop(), std::logic_error);
    EXPECT_THROW(gort::Ticker(-1ms), std::invalid_argument);
  });
  EXPECT_THROW(gort::Timer(1ms), std::logic_error);  // no runtime
  EXPECT_THROW(gort::Ticker(1ms), std::logic_error);
}
