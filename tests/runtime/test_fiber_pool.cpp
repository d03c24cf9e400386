// Fiber records (runtime/src/fiber_pool.h): a fiber's control block and
// small task live in a record apart from its stack, which is bound when the
// fiber first runs; records are cached per worker, and their pages go back
// to the kernel after a peak.
#include <sys/resource.h>

#include <array>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <numeric>
#include <string>
#include <thread>

#include "export_test.h"
#include "support.h"

using namespace std::chrono_literals;
using gort_test::kScale;
using gort_test::with_parked_fibers;
using gort_test::WorkersTest;
namespace d = gort::detail;

namespace {

d::Scheduler* sched() { return d::current_worker()->sched; }

// Waits, bounded, until done() holds; returns whether it did.
template <class F>
bool wait_until(F done, std::chrono::seconds limit = 20s) {
  auto deadline = std::chrono::steady_clock::now() + limit;
  while (!done()) {
    if (std::chrono::steady_clock::now() >= deadline) return false;
    gort::sleep_for(20ms);
  }
  return true;
}

// With one worker, fibers spawned by the running fiber wait in its queue:
// they hold a record each and no stack until they run.
TEST(FiberRecords, QueuedFibersHoldNoStack) {
  const int kFibers = 200;
  gort::Stats seen;
  int ran_then = -1, finished_then = -1;
  std::atomic<int> ran{0}, finished{0};
  gort::run(gort::Config{.workers = 1}, [&] {
    gort::WaitGroup wg;
    wg.add(kFibers);
    for (int i = 0; i < kFibers; ++i)
      go_spawn([&] {
        ran.fetch_add(1, std::memory_order_relaxed);
        wg.done();
        finished.fetch_add(1, std::memory_order_relaxed);  // the last thing it does
      });
    // Nothing else runs while the main fiber looks (one worker). A time
    // slice may have ended during the loop and let some run: those that
    // finished returned their stacks, one still running holds its own.
    seen = gort::stats();
    ran_then = ran.load();
    finished_then = finished.load();
    wg.wait();
  });
  EXPECT_LT(ran_then, kFibers) << "every fiber ran before the main fiber looked: nothing was queued";
  EXPECT_EQ(seen.live_fibers, 1 + kFibers - finished_then);
  EXPECT_EQ(seen.stacks_in_use, 1 + ran_then - finished_then)
      << kFibers - ran_then << " fibers queued, not yet run, should hold no stack";
  EXPECT_EQ(ran.load(), kFibers);
  EXPECT_EQ(d::last_teardown().records_in_use, 0);
}

// A task too large for the record is put on a stack bound at spawn, and
// arrives whole.
TEST(FiberRecords, LargeTaskGoesOnAStackBoundAtSpawn) {
  int64_t stacks_after_spawn = -1;
  long sum = -1;
  gort::run(gort::Config{.workers = 1}, [&] {
    std::array<unsigned char, 2048> big;
    std::iota(big.begin(), big.end(), 0);
    gort::WaitGroup wg;
    wg.add(1);
    go_spawn([&wg, &sum, big] {
      sum = std::accumulate(big.begin(), big.end(), 0L);
      wg.done();
    });
    stacks_after_spawn = gort::stats().stacks_in_use;
    wg.wait();
  });
  EXPECT_EQ(stacks_after_spawn, 2) << "the main fiber's and the large task's";
  long expected = 0;
  for (int i = 0; i < 2048; ++i) expected += i % 256;
  EXPECT_EQ(sum, expected);
  EXPECT_EQ(d::last_teardown().records_in_use, 0);
}

class FiberPoolTest : public WorkersTest {};

// After a peak of parked fibers, the pages of their records go back, and a
// second fan-out reuses those records before it carves new ones, and runs.
// The scavenger is called by hand (the monitor's is off), so that no page
// goes back at a moment the test does not choose.
TEST_P(FiberPoolTest, RecordPagesGoBackAfterAPeakAndComeBackWorking) {
  const int kFibers = 20000 / kScale;
  setenv("GORT_SCAVENGE_MS", "0", 1);
  run([&] {
    d::FiberPool& pool = sched()->fiber_pool;
    with_parked_fibers(kFibers, [] {});
    std::size_t carved = pool.carved();
    EXPECT_GE(carved, std::size_t(kFibers));
    // Every page none of whose records a worker's cache still holds goes
    // back (cached records pin theirs: with many workers and a small peak,
    // most pages). Workers going idle hand records to the pool meanwhile,
    // so the scavenger is called until it has caught up with them.
    const std::size_t per_page = d::page_size() / d::kFiberRecordBytes;
    EXPECT_TRUE(wait_until([&] {
      pool.scavenge();
      std::size_t cold_pages = pool.cold_count() / per_page;
      return cold_pages > 0 && cold_pages == pool.pages_fully_free();
    })) << pool.cold_count() / per_page
        << " pages given back of " << pool.pages_fully_free() << " that could be, " << carved / per_page << " carved";
    // Records on given-back pages read as zeros: no fiber to list but main.
    std::string dump = gort::debug::fibers_text();
    EXPECT_NE(dump.find(", 1 fibers\n"), std::string::npos) << dump;
    EXPECT_NE(dump.find("fiber 1 \"main\""), std::string::npos) << dump;
    // A second fan-out as large as every record carved needs them all, the
    // cold ones too: the pool hands those out before it carves, and their
    // fibers run like any other.
    std::size_t cold_at_peak = ~std::size_t(0);
    with_parked_fibers(int(carved), [&] { cold_at_peak = pool.cold_count(); });
    EXPECT_EQ(cold_at_peak, 0u) << "records on given-back pages left unused while the pool carved new ones";
    EXPECT_GT(pool.carved(), carved);
  });
  unsetenv("GORT_SCAVENGE_MS");
}

// Spawning from a thread that is no worker takes records from the pool.
TEST_P(FiberPoolTest, SpawnFromAForeignThread) {
  const int kFibers = 500;
  run([&] {
    gort::WaitGroup wg;
    wg.add(kFibers);
    std::atomic<int> ran{0};
    std::thread t([&] {
      for (int i = 0; i < kFibers; ++i)
        go_spawn([&] {
          ran.fetch_add(1, std::memory_order_relaxed);
          wg.done();
        });
    });
    wg.wait();
    t.join();
    EXPECT_EQ(ran.load(), kFibers);
  });
}

GORT_INSTANTIATE(FiberPoolTest);

// A stack the kernel refuses when the fiber first runs has nobody to throw
// to: the runtime says so and stops, as Go does when it runs out of memory.
TEST(FiberRecordsDeathTest, ARefusedStackIsAFatalErrorNamingTheFiber) {
#if defined(GORT_SANITIZER_BUILD)
  GTEST_SKIP() << "the sanitizers need address space of their own";
#endif
  EXPECT_EXIT(gort::run(gort::Config{.workers = 1},
                        [] {
                          // Room for anything but the slab of 1 GiB stacks
                          // (128 GiB of reservation): the rest of the
                          // process (a thread's first malloc, which maps an
                          // arena; the timer heap) may still map meanwhile.
                          long pages = 0;
                          if (FILE* statm = std::fopen("/proc/self/statm", "r")) {
                            if (std::fscanf(statm, "%ld", &pages) != 1) pages = 0;
                            std::fclose(statm);
                          }
                          ASSERT_GT(pages, 0);
                          rlimit limit{0, RLIM_INFINITY};
                          getrlimit(RLIMIT_AS, &limit);
                          limit.rlim_cur = rlim_t(pages) * d::page_size() + (rlim_t(16) << 30);
                          ASSERT_EQ(setrlimit(RLIMIT_AS, &limit), 0);
                          gort::spawn(gort::SpawnOptions{.stack_size = std::size_t(1) << 30}, [] {});
                          gort::sleep_for(10s);
                        }),
              ::testing::ExitedWithCode(2), "fatal error: fiber [0-9]+: no memory for its stack \\(1048576 KiB\\)");
}

}  // namespace
