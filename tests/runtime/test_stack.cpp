// Fiber stacks: lazy commit, guards without extra mappings, overflow
// reports, batched trimming, the scavenger (stacks and the heap), system
// calls per fiber, and 100 000 parked fibers under vm.max_map_count.
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <csignal>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "export_test.h"
#include "support.h"

using namespace std::chrono_literals;
using gort_test::kScale;
using gort_test::with_parked_fibers;
using gort_test::WorkersTest;
namespace d = gort::detail;

namespace {

int count_mappings() {
  std::ifstream maps("/proc/self/maps");
  std::string line;
  int n = 0;
  while (std::getline(maps, line)) ++n;
  return n;
}

long status_kib(const char* field) {
  std::ifstream status("/proc/self/status");
  std::string line;
  std::size_t len = std::strlen(field);
  while (std::getline(status, line))
    if (line.compare(0, len, field) == 0 && line[len] == ':') return std::atol(line.c_str() + len + 1);
  return -1;
}

// Recursion with a 256-byte frame that the compiler must keep: writes
// across all of it (clang shrinks an array of which one byte is used).
__attribute__((noinline)) int recurse(int n) {
  volatile char frame[256];
  for (int i = 0; i < 256; i += 64) frame[i] = char(n);
  if (n == 0) return 0;
  return recurse(n - 1) + frame[0];
}

}  // namespace

class Stacks : public WorkersTest {};
GORT_INSTANTIATE(Stacks);

TEST_P(Stacks, DeepRecursionWithinTheReservation) {
  run([] {
    gort::WaitGroup wg;
    wg.add(2);
    std::atomic<int> results{0};
    // ~150 KiB of a 256 KiB default stack (ASan frames are larger: less depth).
    go_spawn([&] {
      recurse(400 / (kScale > 1 ? 4 : 1));
      results++;
      wg.done();
    });
    gort::spawn(gort::SpawnOptions{.stack_size = 4 << 20, .name = "big"}, [&] {
      recurse(8000 / (kScale > 1 ? 4 : 1));
      results++;
      wg.done();
    });
    wg.wait();
    EXPECT_EQ(results, 2);
  });
}

TEST_P(Stacks, OverflowIsAFatalErrorNamingTheFiber) {
#if defined(GORT_SANITIZER_BUILD)
  GTEST_SKIP() << "sanitizers own SIGSEGV and stack overflows in their builds";
#endif
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  int n = workers();
  EXPECT_EXIT(gort::run(gort::Config{.workers = n},
                        [] {
                          gort::WaitGroup wg;
                          wg.add(1);
                          gort::spawn(gort::SpawnOptions{.stack_size = 64 * 1024, .name = "deep"}, [&] {
                            recurse(1 << 20);
                            wg.done();
                          });
                          wg.wait();
                        }),
              ::testing::ExitedWithCode(2),
              "fatal error: stack overflow in fiber [0-9]+ \"deep\" \\(stack reservation 64 KiB.*\n\n"
              "  #0 0x[0-9a-f]+ [^\n]*recurse[^\n]*\n"
              "  #1 0x[0-9a-f]+ [^\n]*recurse");
}

TEST(StackPool, GuardsCostNoExtraMapping) {
  d::StackPool pool;
  if (pool.guard_mode() != d::GuardMode::kGuardInstall) GTEST_SKIP() << "kernel lacks MADV_GUARD_INSTALL";
  if (gort_test::kThreadSanitizer) GTEST_SKIP() << "TSan adds mappings of its own";
  int before = count_mappings();
  std::vector<d::Stack> stacks;
  for (int i = 0; i < 1000; ++i) stacks.push_back(pool.allocate(d::kDefaultStackSize));
  int added = count_mappings() - before;
  // 1000 stacks in slabs of 128: 8 slabs (adjacent slabs may even merge),
  // and under ASan a few mappings of its allocator's; never one per stack.
  EXPECT_LE(added, 1000 / 32);
  for (auto& s : stacks) pool.release(s);
  EXPECT_EQ(pool.in_use(), 0);
}

// Threads that find the pool empty carve slabs of their own at once (the
// system calls run without the pool's lock): every stack handed out is
// distinct and whole, and the slabs account for every one.
TEST(StackPool, ThreadsCarveAtOnceAndEveryStackIsTheirsAlone) {
  d::StackPool pool;
  constexpr int kThreads = 4, kEach = 3 * d::kStacksPerSlab / 2;
  std::vector<std::vector<d::Stack>> got(kThreads);
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t)
    threads.emplace_back([&pool, &mine = got[std::size_t(t)], t] {
      for (int i = 0; i < kEach; ++i) {
        mine.push_back(pool.allocate(d::kDefaultStackSize));
        mine.back().top()[-1] = char(t);  // the top is writable, and this thread's
      }
    });
  for (auto& th : threads) th.join();
  std::vector<char*> bases;
  for (int t = 0; t < kThreads; ++t)
    for (const d::Stack& st : got[std::size_t(t)]) {
      EXPECT_EQ(st.top()[-1], char(t)) << "a stack handed to two threads";
      bases.push_back(st.base);
    }
  std::sort(bases.begin(), bases.end());
  EXPECT_EQ(std::adjacent_find(bases.begin(), bases.end()), bases.end()) << "a stack handed out twice";
  EXPECT_EQ(pool.in_use(), kThreads * kEach);
  EXPECT_GE(pool.carved(), std::size_t(kThreads * kEach));
  // The slabs, cut from reservations made at once by several threads, never
  // overlap, and every stack handed out lies inside one of them.
  std::vector<std::pair<char*, char*>> spans;
  for (std::size_t i = 0; i < pool.slab_count(); ++i) {
    d::StackPool::SlabSpan sl = pool.slab(i);
    spans.emplace_back(sl.base, sl.base + sl.stack_size * std::size_t(sl.count));
  }
  std::sort(spans.begin(), spans.end());
  for (std::size_t i = 1; i < spans.size(); ++i) EXPECT_LE(spans[i - 1].second, spans[i].first) << "slabs overlap";
  for (char* b : bases) {
    auto it = std::upper_bound(spans.begin(), spans.end(), std::make_pair(b, static_cast<char*>(nullptr)),
                               [](const auto& x, const auto& y) { return x.first < y.first; });
    ASSERT_NE(it, spans.begin());
    EXPECT_LT(b, std::prev(it)->second) << "a stack outside every slab";
  }
  for (auto& mine : got)
    for (const d::Stack& st : mine) pool.release(st);
  EXPECT_EQ(pool.in_use(), 0);
}

TEST(StackPool, MprotectFallbackWorks) {
  setenv("GORT_GUARD", "mprotect", 1);
  d::StackPool pool;
  unsetenv("GORT_GUARD");
  ASSERT_EQ(pool.guard_mode(), d::GuardMode::kMprotect);
  int before = count_mappings();
  std::vector<d::Stack> stacks;
  for (int i = 0; i < 64; ++i) stacks.push_back(pool.allocate(64 * 1024));
  // The fallback splits the slab: about two mappings per stack.
  EXPECT_GE(count_mappings() - before, 64);
  stacks[0].top()[-1] = 1;  // the usable part is writable
  for (auto& s : stacks) pool.release(s);
}

TEST(StackPool, TrimReturnsDeepPagesAndKeepsTheTop) {
  d::StackPool pool;
  d::StackCache cache(&pool, d::kDefaultStackSize);
  d::Stack s = cache.get(d::kDefaultStackSize);
  std::memset(s.usable_bottom(), 1, s.usable());  // as if a deep recursion ran
  EXPECT_EQ(gort_test::resident_pages(s.usable_bottom(), s.top()), int(s.usable() / d::page_size()));
  cache.put(s);
  cache.trim();
  // Everything but the retained top is gone; the top is still there.
  EXPECT_EQ(gort_test::resident_pages(s.usable_bottom(), s.top() - d::kRetainedBytes), 0);
  EXPECT_EQ(gort_test::resident_pages(s.top() - d::kRetainedBytes, s.top()), int(d::kRetainedBytes / d::page_size()));
  cache.flush();
}

// A fresh slab's top pages are committed in one call: an unused stack costs
// that page and nothing else.
TEST(StackPool, UnusedStackCostsAtMostItsTopPage) {
  d::StackPool pool;
  d::Stack s = pool.allocate(1 << 20);
  EXPECT_EQ(gort_test::resident_pages(s.usable_bottom(), s.top() - d::page_size()), 0);
  EXPECT_LE(gort_test::resident_pages(s.top() - d::page_size(), s.top()), 1);
  pool.release(s);
}

// The guards of a whole slab go in one batch: each of them must still fault.
TEST(StackPool, EveryGuardOfABatchFaults) {
#if defined(GORT_SANITIZER_BUILD)
  GTEST_SKIP() << "sanitizers own SIGSEGV in their builds";
#endif
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  for (int index : {0, d::kStacksPerSlab / 2, d::kStacksPerSlab - 1}) {
    EXPECT_EXIT(
        {
          d::StackPool pool;
          std::vector<d::Stack> stacks;
          for (int i = 0; i < d::kStacksPerSlab; ++i) stacks.push_back(pool.allocate(64 * 1024));
          d::Stack& s = stacks[std::size_t(index)];
          s.usable_bottom()[0] = 1;  // the usable part is writable
          *reinterpret_cast<volatile char*>(s.usable_bottom() - 1) = 1;
        },
        ::testing::KilledBySignal(SIGSEGV), "")
        << "stack " << index;
  }
}

// A batch of freed stacks in which a few went deep: those few lose their
// deep pages, every stack keeps its top, and the batch costs a few system
// calls, not one per stack.
TEST(StackPool, DeepPagesGoBackAfterABatchWithoutACallPerStack) {
  d::StackPool pool;
  d::StackCache cache(&pool, d::kDefaultStackSize);
  std::vector<d::Stack> stacks;
  for (int i = 0; i < d::kTrimBatch; ++i) stacks.push_back(cache.get(d::kDefaultStackSize));
  for (d::Stack& s : stacks) std::memset(s.top() - d::kRetainedBytes, 1, d::kRetainedBytes);
  // A deep recursion writes every page from the top down to its depth.
  for (int i = 0; i < d::kTrimBatch; i += 50) {
    d::Stack& s = stacks[std::size_t(i)];
    std::memset(s.top() - 128 * 1024, 1, 128 * 1024);
  }
  int64_t before = pool.syscalls();
  for (d::Stack& s : stacks) cache.put(s);  // the last put completes the batch: it trims
  int64_t calls = pool.syscalls() - before;
  for (d::Stack& s : stacks) {
    EXPECT_EQ(gort_test::resident_pages(s.usable_bottom(), s.top() - d::kRetainedBytes), 0);
    EXPECT_EQ(gort_test::resident_pages(s.top() - d::kRetainedBytes, s.top()), int(d::kRetainedBytes / d::page_size()));
  }
  // One batched advice for the deep ones; where the kernel cannot batch,
  // one call per deep stack. Which ones went deep: where the kernel has
  // PAGEMAP_SCAN, one page-table scan per run of close stacks (at most one
  // per slab here), else nothing but a read of each sentinel.
  int advice = gort::detail::MadviseBatch::batched() ? 1 : d::kTrimBatch / 50 + 1;
  EXPECT_LE(calls, advice + int(pool.slab_count()));
  cache.flush();
}

// Which freed stacks went deep: one page-table scan for a run of close
// stacks where the kernel has PAGEMAP_SCAN, their sentinel pages for
// scattered ones; without the scan (GORT_STACK_SCAN=0), sentinels for all.
// Either way the deep ones, and only their deep pages, go back.
TEST(StackPool, TrimFindsTheDeepStacksOfCloseRunsAndOfScatteredOnes) {
  const std::size_t page = d::page_size();
  auto present = [&](char* at) {  // mapped at all, the zero page included
    int fd = open("/proc/self/pagemap", O_RDONLY);
    uint64_t e = 0;
    EXPECT_EQ(pread(fd, &e, 8, off_t(reinterpret_cast<uintptr_t>(at) / page * 8)), 8);
    close(fd);
    return (e >> 63 & 1) != 0;
  };
  for (const char* scan : {"1", "0"}) {
    SCOPED_TRACE(std::string("GORT_STACK_SCAN=") + scan);
    setenv("GORT_STACK_SCAN", scan, 1);
    d::StackPool pool;
    unsetenv("GORT_STACK_SCAN");
    if (std::strcmp(scan, "0") == 0) {
      EXPECT_FALSE(pool.scans_page_tables());
    }
    std::vector<d::Stack> all;
    for (int i = 0; i < d::kStacksPerSlab; ++i) all.push_back(pool.allocate(d::kDefaultStackSize));
    std::sort(all.begin(), all.end(), [](const d::Stack& a, const d::Stack& b) { return a.base < b.base; });
    // A close run (the first half of the slab) and scattered stacks (every
    // eighth of the rest); every fifth of them goes deep.
    std::vector<d::Stack> freed;
    for (int i = 0; i < d::kStacksPerSlab / 2; ++i) freed.push_back(all[std::size_t(i)]);
    for (int i = d::kStacksPerSlab / 2; i < d::kStacksPerSlab; i += 8) freed.push_back(all[std::size_t(i)]);
    auto deep = [](std::size_t i) { return i % 5 == 0; };
    for (std::size_t i = 0; i < freed.size(); ++i) {
      d::Stack& s = freed[i];
      std::memset(s.top() - d::kRetainedBytes, 1, d::kRetainedBytes);
      if (deep(i)) std::memset(s.top() - 128 * 1024, 1, 128 * 1024);
      s.dirty = true;  // as StackCache::put marks it
    }
    int64_t before = pool.syscalls();
    pool.trim(freed.data(), freed.size());
    for (std::size_t i = 0; i < freed.size(); ++i) {
      d::Stack& s = freed[i];
      EXPECT_EQ(gort_test::resident_pages(s.usable_bottom(), s.top() - d::kRetainedBytes), 0) << "stack " << i;
      EXPECT_EQ(gort_test::resident_pages(s.top() - d::kRetainedBytes, s.top()), int(d::kRetainedBytes / page))
          << "stack " << i;
      EXPECT_FALSE(s.dirty);
    }
    if (pool.scans_page_tables()) {
      // The close run (the first half, and the next stack, adjacent to it)
      // was scanned, not read: its shallow stacks' sentinel pages were never
      // mapped, not even to the zero page. The scattered ones were read; the
      // deep ones start again as fresh.
      const std::size_t run = std::size_t(d::kStacksPerSlab / 2) + 1;
      for (std::size_t i = 0; i < freed.size(); ++i) {
        using S = d::Stack::Sentinel;
        S want = deep(i) ? S::kFresh : i < run ? S::kScanned : S::kMapped;
        EXPECT_EQ(int(freed[i].sentinel), int(want)) << "stack " << i;
        if (i < run && !deep(i)) {
          EXPECT_FALSE(present(freed[i].top() - d::kRetainedBytes - page)) << i;
        }
      }
      EXPECT_GE(pool.syscalls() - before, 3);  // a scan, a populate, the advice
      // The shallow stacks of the run are used again: scanned a second
      // time, still unmapped; at the check after that, mapped and read.
      for (int check = 2; check <= d::kScansBeforeMapping + 1; ++check) {
        SCOPED_TRACE("check " + std::to_string(check));
        std::vector<d::Stack> again;
        for (std::size_t i = 0; i < run; ++i)
          if (!deep(i)) again.push_back(freed[i]);
        for (d::Stack& s : again) s.dirty = true;
        pool.trim(again.data(), again.size());
        bool mapped = check > d::kScansBeforeMapping;
        for (std::size_t i = 0; i < again.size(); ++i) {
          using S = d::Stack::Sentinel;
          EXPECT_EQ(int(again[i].sentinel), int(mapped ? S::kMapped : S::kScanned)) << "stack " << i;
          EXPECT_EQ(present(again[i].top() - d::kRetainedBytes - page), mapped) << "stack " << i;
        }
        std::size_t k = 0;
        for (std::size_t i = 0; i < run; ++i)
          if (!deep(i)) freed[i] = again[k++];
      }
    }
    for (d::Stack& s : all) pool.release(s);
  }
}

// An open /proc/self/pagemap describes the process that opened it: a
// forked child's trim must not scan its parent's page tables (it would see
// the parent's pages, not its own deep ones).
TEST(StackPool, AForkedChildFindsItsOwnDeepStacks) {
  d::StackPool pool;
  std::vector<d::Stack> stacks;
  for (int i = 0; i < 8; ++i) stacks.push_back(pool.allocate(d::kDefaultStackSize));
  std::sort(stacks.begin(), stacks.end(), [](const d::Stack& a, const d::Stack& b) { return a.base < b.base; });
  pid_t child = fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    for (d::Stack& s : stacks) {
      std::memset(s.top() - 128 * 1024, 1, 128 * 1024);  // every one goes deep
      s.dirty = true;
    }
    pool.trim(stacks.data(), stacks.size());
    int left = 0;
    for (d::Stack& s : stacks) left += gort_test::resident_pages(s.usable_bottom(), s.top() - d::kRetainedBytes);
    std::_Exit(left == 0 ? 0 : 1);
  }
  int status = 0;
  ASSERT_EQ(waitpid(child, &status, 0), child);
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << "the child's deep pages stayed resident";
  for (d::Stack& s : stacks) pool.release(s);
}

// The same through the runtime: a fiber recurses deep and exits; once its
// worker goes idle (main sleeps), the stack's deep pages are gone.
TEST(ManyFibers, DeepRecursionIsGivenBackWhenTheWorkerGoesIdle) {
  gort::run(gort::Config{.workers = 1}, [] {
    d::Stack stack;
    gort::WaitGroup wg;
    wg.add(1);
    go_spawn([&] {
      stack = d::current_fiber()->stack;
      recurse(kScale > 1 ? 200 : 400);  // ~100 KiB (sanitizers: larger frames, fewer of them)
      EXPECT_GT(gort_test::resident_pages(stack.usable_bottom(), stack.top() - d::kRetainedBytes), 0);
      wg.done();
    });
    wg.wait();
    gort::sleep_for(20ms);  // the worker goes idle: its cache trims
    EXPECT_EQ(gort_test::resident_pages(stack.usable_bottom(), stack.top() - d::kRetainedBytes), 0);
  });
}

// Kernels without batched advice get one call per range: guards still
// fault, deep pages still go back. Run in a child (the mode is probed once
// per process).
TEST(StackPool, SingleCallFallbackKeepsThePromises) {
#if defined(GORT_SANITIZER_BUILD)
  GTEST_SKIP() << "sanitizers own SIGSEGV in their builds";
#endif
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  setenv("GORT_MADVISE", "single", 1);
  EXPECT_EXIT(
      {
        if (d::MadviseBatch::batched()) std::_Exit(3);
        d::StackPool pool;
        d::StackCache cache(&pool, d::kDefaultStackSize);
        d::Stack s = cache.get(d::kDefaultStackSize);
        std::memset(s.top() - 128 * 1024, 1, 128 * 1024);  // a deep recursion
        cache.put(s);
        cache.trim();
        if (gort_test::resident_pages(s.usable_bottom(), s.top() - d::kRetainedBytes) != 0) std::_Exit(4);
        *reinterpret_cast<volatile char*>(s.usable_bottom() - 1) = 1;  // the guard
        std::_Exit(5);
      },
      ::testing::KilledBySignal(SIGSEGV), "");
  unsetenv("GORT_MADVISE");
}

// Fan-out: spawn N fibers that finish at once, then wait; the stack code's
// system calls, amortized, stay far below one per fiber, the first time
// (slabs are carved) and in steady state (stacks come back from caches).
TEST(ManyFibers, FanOutMakesNoSystemCallPerFiber) {
  const int kFibers = 100000 / kScale;
  gort::run(gort::Config{.workers = 2}, [&] {
    d::StackPool& pool = d::current_worker()->sched->stack_pool;
    for (int round = 0; round < 2; ++round) {
      int64_t before = pool.syscalls();
      gort::WaitGroup wg;
      wg.add(kFibers);
      for (int i = 0; i < kFibers; ++i) go_spawn([&] { wg.done(); });
      wg.wait();
      double per_fiber = double(pool.syscalls() - before) / kFibers;
      std::printf("round %d: %.4f stack system calls per fiber\n", round, per_fiber);
      EXPECT_LE(per_fiber, 0.05) << "round " << round;
    }
  });
}

// After a peak, free stacks go back to the kernel in the background: the
// memory the peak added falls to a small part of itself within a bounded
// time, here with a short scavenge period.
// The sanitizers keep memory of their own per fiber (shadow of its stack,
// ASan's fake frames), which stays when the stack is given back.
#if defined(GORT_SANITIZER_BUILD)
constexpr bool kRssFollowsStacks = false;
#else
constexpr bool kRssFollowsStacks = true;
#endif

TEST(ManyFibers, MemoryGoesBackAfterAPeak) {
  const int kFibers = 20000 / kScale;
  setenv("GORT_SCAVENGE_MS", "50", 1);
  long before = 0, peak = 0, after = 0;
  std::size_t cold = 0;
  gort::run(gort::Config{.workers = 2}, [&] {
    before = status_kib("VmRSS");
    with_parked_fibers(kFibers, [&] { peak = status_kib("VmRSS"); });
    auto settled = [&] {
      return cold > std::size_t(kFibers / 2) && (!kRssFollowsStacks || after - before <= (peak - before) / 4);
    };
    auto deadline = std::chrono::steady_clock::now() + 20s;
    do {
      gort::sleep_for(50ms);
      after = status_kib("VmRSS");
      cold = d::current_worker()->sched->stack_pool.cold_count();
    } while (!settled() && std::chrono::steady_clock::now() < deadline);
  });
  unsetenv("GORT_SCAVENGE_MS");
  std::printf("RSS before %ld KiB, at the peak %ld KiB, after %ld KiB; %zu stacks given back whole\n", before, peak,
              after, cold);
  if (kRssFollowsStacks) {
    EXPECT_LE(after - before, (peak - before) / 4);
  }
  EXPECT_GT(cold, std::size_t(kFibers / 2));
}

// What a peak's fibers allocated on the heap goes back with their stacks:
// each fiber holds a 4 KiB buffer while parked, and every 16th leaves a
// small block behind that outlives the peak, scattered through the heap as
// a server's long-lived objects are, so that the allocator cannot just
// shrink its heaps' tops. (The sanitizers' allocators are their own.)
TEST(ManyFibers, HeapMemoryGoesBackAfterAPeak) {
  if (!kRssFollowsStacks) GTEST_SKIP() << "the sanitizer's allocator keeps its own memory";
  const int kFibers = 20000;
  constexpr std::size_t kBuffer = 4096;
  setenv("GORT_SCAVENGE_MS", "50", 1);
  std::vector<std::unique_ptr<char[]>> survivors(kFibers / 16);
  long before = 0, peak = 0, after = 0;
  gort::run(gort::Config{.workers = 2}, [&] {
    before = status_kib("VmRSS");
    {
      gort::WaitGroup parked, release, finished;
      parked.add(kFibers);
      release.add(1);
      finished.add(kFibers);
      for (int i = 0; i < kFibers; ++i)
        go_spawn([&, i] {
          auto buffer = std::make_unique<char[]>(kBuffer);
          std::memset(buffer.get(), 1, kBuffer);
          if (i % 16 == 0) survivors[std::size_t(i / 16)] = std::make_unique<char[]>(64);
          parked.done();
          release.wait();
          finished.done();
        });
      parked.wait();
      peak = status_kib("VmRSS");
      release.done();
      finished.wait();
    }
    auto deadline = std::chrono::steady_clock::now() + 20s;
    do {
      gort::sleep_for(50ms);
      after = status_kib("VmRSS");
    } while (after - before > (peak - before) / 4 && std::chrono::steady_clock::now() < deadline);
  });
  unsetenv("GORT_SCAVENGE_MS");
  std::printf("RSS before %ld KiB, at the peak %ld KiB, after %ld KiB\n", before, peak, after);
  EXPECT_GT(peak - before, long(kFibers * kBuffer / 1024));  // the buffers were resident
  EXPECT_LE(after - before, (peak - before) / 4);
}

// 100 000 parked fibers with default settings: the mapping count stays far
// below vm.max_map_count and each fiber costs a few KiB.
TEST(ManyFibers, HundredThousandParked) {
  const int kFibers = 100000 / kScale;
  int maps_before = count_mappings();
  long rss_before = status_kib("VmRSS");
  gort::run(gort::Config{.workers = 2}, [&] {
    with_parked_fibers(kFibers, [&] {
      gort::sleep_for(10ms);  // let the last ones reach their wait
      gort::Stats st = gort::stats();
      EXPECT_EQ(st.live_fibers, kFibers + 1);
      int maps = count_mappings();
      long rss = status_kib("VmRSS"), pte = status_kib("VmPTE");
      double per_fiber_kib = double(rss - rss_before) / kFibers;
      std::printf(
          "%d parked fibers: %d mappings (+%d), RSS +%.2f KiB/fiber, page tables %ld KiB (%.2f KiB/fiber), guards: "
          "%s\n",
          kFibers, maps, maps - maps_before, per_fiber_kib, pte, double(pte) / kFibers,
          st.guard_install ? "MADV_GUARD_INSTALL" : "mprotect");
      EXPECT_LT(maps, 65530);
      if (st.guard_install && !gort_test::kThreadSanitizer) {
        EXPECT_LT(maps - maps_before, kFibers / 32);
      }
#if !defined(GORT_SANITIZER_BUILD)
      EXPECT_LE(per_fiber_kib, 6.0);
#endif
    });
  });
}
