// Fairness: time slices at runtime calls, spare workers for stuck ones, the
// report that names the fiber (runtime/src/monitor.h). Each case runs as
// many offenders as workers, so without the monitor nothing else could run.
// Bounds are generous: these tests assert behaviour, not timing.
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdlib>
#include <thread>
#include <vector>

#include <gort/detail/preempt.h>

#include "support.h"

using namespace std::chrono_literals;
using gort_test::WorkersTest;
using Clock = std::chrono::steady_clock;

namespace {

// A 10 ms ticker: counts its ticks until `stop`.
struct Ticker {
  std::atomic<int> ticks{0};
  std::atomic<bool> stop{false};
  gort::WaitGroup done;
  void start() {
    done.add(1);
    go_spawn([this] {
      while (!stop.load()) {
        gort::sleep_for(10ms);
        ticks.fetch_add(1);
      }
      done.done();
    });
  }
  void finish() {
    stop = true;
    done.wait();
  }
};

// Spins for `d` without a runtime call: a computation the runtime cannot
// interrupt.
void busy_for(std::chrono::milliseconds d) {
  auto end = Clock::now() + d;
  while (Clock::now() < end) {
  }
}

// Runs `offender` on as many fibers as workers and returns how many times a
// 10 ms ticker ticked until they all returned.
int ticks_while(int workers, const std::function<void()>& offender) {
  Ticker ticker;
  ticker.start();
  gort::sleep_for(30ms);  // the ticker is parked on its timer
  std::atomic<int> started{0};
  gort::WaitGroup wg;
  wg.add(workers);
  for (int i = 0; i < workers; ++i)
    go_spawn([&] {
      started.fetch_add(1);
      offender();
      wg.done();
    });
  int before = ticker.ticks.load();
  wg.wait();
  int during = ticker.ticks.load() - before;
  ticker.finish();
  EXPECT_EQ(started.load(), workers);
  return during;
}

}  // namespace

class Preempt : public WorkersTest {
 protected:
  // The stuck-fiber report is its own test: keep it out of the others' output.
  void SetUp() override { setenv("GORT_STUCK_WARN_MS", "0", 1); }
};
GORT_INSTANTIATE(Preempt);

// Every worker's fiber sits in a blocking system call: spares run the ticker.
TEST_P(Preempt, TickerKeepsTickingWhileEveryWorkerBlocksInASystemCall) {
  run([&] {
    int ticks = ticks_while(workers(), [] { usleep(400'000); });
    // 40 possible; without spares none at all.
    EXPECT_GE(ticks, 10) << "the ticker starved while fibers blocked their workers";
    gort::Stats s = gort::stats();
    EXPECT_GE(s.stuck_episodes, uint64_t(workers()));
  });
}

// Every worker's fiber computes without a runtime call: spares again.
TEST_P(Preempt, TickerKeepsTickingWhileEveryWorkerComputes) {
  run([&] {
    int ticks = ticks_while(workers(), [] { busy_for(400ms); });
    // Up to 40; none at all without spares. The bound is low because the
    // busy threads share this machine's cores with the ticker's.
    EXPECT_GE(ticks, 3) << "the ticker starved while fibers computed";
    EXPECT_GE(gort::stats().stuck_episodes, uint64_t(workers()));
  });
}

// Fibers that never block but make runtime calls (a channel with room) are
// preempted at those calls: the ticker runs on the workers themselves.
TEST_P(Preempt, BusyFibersOnAChannelWithRoomLetOthersRun) {
  run([&] {
    int ticks = ticks_while(workers(), [] {
      gort::Chan<int> ch(1);
      auto end = Clock::now() + 400ms;
      while (Clock::now() < end) {
        ch.send(1);  // never blocks: the buffer has room
        (void)ch.recv();
      }
    });
    EXPECT_GE(ticks, 3);  // as above: none without time slices
    EXPECT_GT(gort::stats().preemptions, 0u);
  });
}

// The same with other non-blocking runtime calls: spawns, uncontended locks.
TEST_P(Preempt, BusyFibersSpawningAndLockingLetOthersRun) {
  run([&] {
    int ticks = ticks_while(workers(), [] {
      gort::Mutex mu;
      gort::WaitGroup wg;
      auto end = Clock::now() + 400ms;
      while (Clock::now() < end) {
        std::lock_guard lock(mu);
        wg.add(1);
        go_spawn([&] { wg.done(); });
      }
      wg.wait();
    });
    EXPECT_GE(ticks, 3);
    EXPECT_GT(gort::stats().preemptions, 0u);
  });
}

// Spares stand in only while the episode lasts, then return to the pool and
// their threads exit.
TEST_P(Preempt, SparesGoBackAfterTheEpisode) {
  if (workers() > 2) GTEST_SKIP() << "the pool's expiry takes seconds: two worker counts suffice";
  run([&] {
    int ticks = ticks_while(workers(), [] { usleep(300'000); });
    EXPECT_GE(ticks, 5);
    auto deadline = Clock::now() + 3s;
    while (gort::stats().spare_workers > 0 && Clock::now() < deadline) gort::sleep_for(10ms);
    EXPECT_EQ(gort::stats().spare_workers, 0) << "a spare kept running after the stuck fibers returned";
    deadline = Clock::now() + 15s;
    while (gort::stats().spare_threads > 0 && Clock::now() < deadline) gort::sleep_for(50ms);
    EXPECT_EQ(gort::stats().spare_threads, 0) << "an unused spare thread did not exit";
  });
}

// A stuck fiber is not a deadlock, and spares do not hide one: after an
// episode with spares, fibers that all wait forever are still reported.
class PreemptFatal : public Preempt {
 protected:
  void SetUp() override {
    Preempt::SetUp();
    GTEST_FLAG_SET(death_test_style, "threadsafe");
  }
};
GORT_INSTANTIATE(PreemptFatal);

TEST_P(PreemptFatal, DeadlockAfterAnEpisodeIsStillReported) {
  int n = workers();
  EXPECT_EXIT(gort::run(gort::Config{.workers = n},
                        [n] {
                          ticks_while(n, [] { usleep(100'000); });
                          gort::WaitGroup never;
                          never.add(1);
                          never.wait();
                        }),
              ::testing::ExitedWithCode(2), "fatal error: all fibers are asleep - deadlock!");
}

TEST_P(PreemptFatal, StuckFiberIsReportedOnceWithItsName) {
  int n = workers();
  setenv("GORT_STUCK_WARN_MS", "50", 1);
  EXPECT_EXIT(
      {
        gort::run(gort::Config{.workers = n}, [n] {
          gort::WaitGroup wg;
          wg.add(n);
          for (int i = 0; i < n; ++i)
            gort::spawn(gort::SpawnOptions{.name = "sleeper"}, [&] {
              usleep(300'000);
              wg.done();
            });
          wg.wait();
        });
        std::exit(3);  // stderr is checked below; this exit code says the run ended normally
      },
      ::testing::ExitedWithCode(3),
      "gort: fiber [0-9]+ \"sleeper\" has held worker [0-9]+ for [0-9]+ ms without a runtime call.*"
      "gort::blocking\\(\\)");
}

TEST_P(PreemptFatal, TheReportComesOncePerEpisode) {
  int n = workers();
  setenv("GORT_STUCK_WARN_MS", "50", 1);
  // One fiber stuck for 400 ms: one line, not one per monitor round. Then a
  // second episode of the same fiber: a second line.
  EXPECT_EXIT(
      {
        gort::run(gort::Config{.workers = n}, [] {
          gort::WaitGroup wg;
          wg.add(1);
          gort::spawn(gort::SpawnOptions{.name = "twice"}, [&] {
            usleep(400'000);
            gort::yield();
            usleep(400'000);
            wg.done();
          });
          wg.wait();
        });
        std::exit(3);
      },
      ::testing::ExitedWithCode(3), "^[^\n]*\"twice\" has held[^\n]*\n[^\n]*\"twice\" has held[^\n]*\n$");
}

TEST_P(PreemptFatal, MaxThreadsBoundsTheSpares) {
  int n = workers();
  setenv("GORT_MAX_THREADS", std::to_string(n).c_str(), 1);
  EXPECT_EXIT(gort::run(gort::Config{.workers = n}, [n] { ticks_while(n, [] { usleep(300'000); }); }),
              ::testing::ExitedWithCode(2), "GORT_MAX_THREADS=[0-9]+ allows no spare worker more");
}

TEST_P(PreemptFatal, MaxThreadsBelowTheWorkersIsRefused) {
  int n = workers();
  setenv("GORT_MAX_THREADS", "0", 1);
  EXPECT_EXIT(gort::run(gort::Config{.workers = n}, [] {}), ::testing::ExitedWithCode(2),
              "GORT_MAX_THREADS=\"0\": expected a positive integer");
}

// gort::net's reader yields to the fibers queued on its worker before it
// reads again (net_fd.cpp): they run first, and with none queued it does
// not yield at all.
TEST(YieldIfOthersQueued, RunsTheQueuedFibersFirstAndOnlyThen) {
  EXPECT_FALSE(gort::detail::yield_if_others_queued()) << "outside a fiber";
  gort::run(gort::Config{.workers = 1}, [] {
    EXPECT_FALSE(gort::detail::yield_if_others_queued()) << "nothing queued";
    std::atomic<int> ran{0};
    gort::WaitGroup done;
    done.add(3);
    for (int i = 0; i < 3; ++i)
      go_spawn([&] {
        ran.fetch_add(1);
        done.done();
      });
    EXPECT_TRUE(gort::detail::yield_if_others_queued());
    EXPECT_EQ(ran.load(), 3) << "the queued fibers did not all run before the yielder";
    done.wait();
    EXPECT_FALSE(gort::detail::yield_if_others_queued()) << "nothing queued any more";
  });
}
