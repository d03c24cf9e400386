// Fatal errors: deadlock, unhandled exceptions, misuse. Each runs in a child
// process (gtest death tests) and must exit with status 2 and Go's wording.
#include <stdexcept>
#include <thread>

#include "support.h"

using namespace std::chrono_literals;
using gort_test::WorkersTest;

class Fatal : public WorkersTest {
 protected:
  void SetUp() override { GTEST_FLAG_SET(death_test_style, "threadsafe"); }
};
GORT_INSTANTIATE(Fatal);

TEST_P(Fatal, AllAsleepIsReportedAsDeadlock) {
  int n = workers();
  EXPECT_EXIT(gort::run(gort::Config{.workers = n},
                        [] {
                          gort::WaitGroup wg;
                          wg.add(1);
                          wg.wait();  // nobody will ever call done()
                        }),
              ::testing::ExitedWithCode(2), "fatal error: all fibers are asleep - deadlock!");
}

TEST_P(Fatal, MutexCycleIsReportedAsDeadlock) {
  int n = workers();
  EXPECT_EXIT(gort::run(gort::Config{.workers = n},
                        [] {
                          gort::Mutex a, b;
                          gort::WaitGroup locked, wg;
                          locked.add(2);
                          wg.add(2);
                          go_spawn([&] {
                            a.lock();
                            locked.done();
                            locked.wait();
                            b.lock();
                            wg.done();
                          });
                          go_spawn([&] {
                            b.lock();
                            locked.done();
                            locked.wait();
                            a.lock();
                            wg.done();
                          });
                          wg.wait();
                        }),
              ::testing::ExitedWithCode(2), "all fibers are asleep - deadlock!");
}

TEST_P(Fatal, UnhandledExceptionIsFatal) {
  int n = workers();
  EXPECT_EXIT(gort::run(gort::Config{.workers = n},
                        [] {
                          gort::WaitGroup wg;
                          wg.add(1);
                          go_spawn([] { throw std::runtime_error("boom"); });
                          wg.wait();
                        }),
              ::testing::ExitedWithCode(2),
              "fatal error: unhandled exception in fiber [0-9]+.*std::runtime_error: boom");
}

TEST_P(Fatal, UnhandledNonStdExceptionNamesItsType) {
  int n = workers();
  EXPECT_EXIT(gort::run(gort::Config{.workers = n},
                        [] {
                          gort::WaitGroup wg;
                          wg.add(1);
                          go_spawn([] { throw 42; });
                          wg.wait();
                        }),
              ::testing::ExitedWithCode(2),
              "fatal error: unhandled exception in fiber [0-9]+: int \\(not a std::exception\\)");
}

TEST_P(Fatal, NegativeWaitGroupCounter) {
  int n = workers();
  EXPECT_EXIT(gort::run(gort::Config{.workers = n},
                        [] {
                          gort::WaitGroup wg;
                          wg.done();
                        }),
              ::testing::ExitedWithCode(2), "negative WaitGroup counter");
}

TEST_P(Fatal, PendingTimerIsNotADeadlock) {
  run([] {
    gort::WaitGroup wg;
    wg.add(1);
    go_spawn([&] {
      gort::sleep_for(300ms);
      wg.done();
    });
    wg.wait();
  });
}

TEST_P(Fatal, AnotherThreadThatMayWakeIsNotADeadlock) {
  run([] {
    gort::WaitGroup wg;
    wg.add(1);
    // The thread wakes the main fiber well after the detector's grace period.
    std::thread t([&] {
      std::this_thread::sleep_for(500ms);
      wg.done();
    });
    wg.wait();
    t.join();
  });
}

TEST(FatalConfig, MalformedEnvironmentIsFatal) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  EXPECT_EXIT(
      {
        setenv("GORT_PROCS", "two", 1);
        gort::run([] {});
      },
      ::testing::ExitedWithCode(2), "GORT_PROCS=\"two\": expected a positive integer");
}
