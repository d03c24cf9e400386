// gort::blocking: results, exceptions, the worker keeps running other
// fibers, the bound and the queue behind it, and deadlock detection.
#include <gort/blocking.h>
#include <gort/chan.h>

#include <atomic>
#include <stdexcept>
#include <thread>

#include "support.h"

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;
using gort_test::kScale;
using gort_test::WorkersTest;

class Blocking : public WorkersTest {};
GORT_INSTANTIATE(Blocking);

TEST_P(Blocking, ReturnsResultOnAHelperThread) {
  run([] {
    auto caller = std::this_thread::get_id();
    auto helper = gort::blocking([] { return std::this_thread::get_id(); });
    EXPECT_NE(helper, caller);
    std::string s = gort::blocking([] { return std::string("from a helper"); });
    EXPECT_EQ(s, "from a helper");
    int x = 1;
    int& r = gort::blocking([&]() -> int& { return x; });
    EXPECT_EQ(&r, &x);
    gort::blocking([&] { x = 2; });
    EXPECT_EQ(x, 2);
    auto p = gort::blocking([] { return std::make_unique<int>(3); });  // move-only result
    EXPECT_EQ(*p, 3);
  });
}

TEST_P(Blocking, PropagatesExceptions) {
  run([] {
    EXPECT_THROW(gort::blocking([]() -> int { throw std::runtime_error("boom"); }), std::runtime_error);
    try {
      gort::blocking([] { throw 7; });
      ADD_FAILURE();
    } catch (int v) {
      EXPECT_EQ(v, 7);
    }
  });
}

TEST_P(Blocking, OtherFibersRunMeanwhile) {
  // Also on 1 worker: the blocked call must not hold it.
  run([] {
    std::atomic<bool> done{false};
    std::atomic<int64_t> counter{0};
    gort::WaitGroup wg;
    wg.add(1);
    go_spawn([&] {
      while (!done.load()) {
        counter++;
        gort::yield();
      }
      wg.done();
    });
    int64_t before = counter.load();
    gort::blocking([] { std::this_thread::sleep_for(300ms); });
    int64_t during = counter.load() - before;
    done = true;
    wg.wait();
    EXPECT_GT(during, 100);
  });
}

TEST_P(Blocking, CallsQueueBeyondTheBound) {
  run([] {
    gort::set_blocking_threads(2);
    EXPECT_EQ(gort::blocking_threads(), 2);
    constexpr int kCalls = 16;
    std::atomic<int> running{0}, peak{0}, finished{0};
    gort::WaitGroup wg;
    wg.add(kCalls);
    for (int i = 0; i < kCalls; ++i)
      go_spawn([&] {
        gort::blocking([&] {
          int now = ++running;
          int p = peak.load();
          while (now > p && !peak.compare_exchange_weak(p, now)) {
          }
          std::this_thread::sleep_for(5ms);
          --running;
        });
        finished++;
        wg.done();
      });
    wg.wait();
    gort::set_blocking_threads(0);
    EXPECT_EQ(finished, kCalls);  // nothing lost
    EXPECT_LE(peak, 2);           // never more helpers than the bound
    EXPECT_GE(gort::blocking_threads(), 4);
  });
}

TEST_P(Blocking, ManyConcurrentCalls) {
  run([] {
    constexpr int kFibers = 200 / kScale;
    std::atomic<int64_t> sum{0};
    gort::WaitGroup wg;
    wg.add(kFibers);
    for (int i = 0; i < kFibers; ++i)
      go_spawn([&, i] {
        sum += gort::blocking([i] {
          std::this_thread::sleep_for(100us);
          return int64_t(i);
        });
        wg.done();
      });
    wg.wait();
    EXPECT_EQ(sum.load(), int64_t(kFibers) * (kFibers - 1) / 2);
  });
}

TEST_P(Blocking, HelperMayReadyFibers) {
  run([] {
    // The blocking call itself sends to a fiber (a helper readying a fiber
    // through a channel, not only through the call's own completion).
    gort::Chan<int> ch(1);
    int r = gort::blocking([&] {
      ch.send(5);
      return 1;
    });
    EXPECT_EQ(r + *ch.recv(), 6);
  });
}

TEST_P(Blocking, NoFalseDeadlockWhileACallIsInFlight) {
  // The only fiber is parked in blocking() and every worker idles for
  // longer than the deadlock check's grace period: external_wakers must
  // keep the runtime from reporting a deadlock.
  run([] { gort::blocking([] { std::this_thread::sleep_for(400ms); }); });
}

TEST(BlockingNoFiber, RunsInline) {
  auto caller = std::this_thread::get_id();
  EXPECT_EQ(gort::blocking([] { return std::this_thread::get_id(); }), caller);
  EXPECT_THROW(gort::blocking([] { throw std::runtime_error("x"); }), std::runtime_error);
}

TEST(BlockingNoFiber, MainReturnsWhileCallInFlight) {
  // gort::run waits for the call in flight, then returns normally.
  std::atomic<bool> finished{false};
  int rc = gort::run(gort::Config{.workers = 2}, [&] {
    go_spawn([&] {
      gort::blocking([&] {
        std::this_thread::sleep_for(100ms);
        finished = true;
      });
    });
    gort::sleep_for(20ms);
  });
  EXPECT_EQ(rc, 0);
  EXPECT_TRUE(finished);
}
