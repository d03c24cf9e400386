// on_worker_stack: deep non-blocking work on the worker's big stack, leaving
// the fiber's own stack shallow.
#include <gort/worker_stack.h>
#include <sys/mman.h>

#include <atomic>
#include <stdexcept>
#include <vector>

#include "export_test.h"
#include "support.h"

using gort_test::kScale;
using gort_test::WorkersTest;
namespace d = gort::detail;

namespace {

// 256-byte frames the compiler must keep: ~2.8 MB for 10 000 levels.
__attribute__((noinline)) uint64_t deep(uint32_t n) {
  volatile char frame[256];
  frame[0] = char(n);
  if (n == 0) return 0;
  return deep(n - 1) + n + uint64_t(frame[0] - char(n));
}

}  // namespace

class WorkerStack : public WorkersTest {};
GORT_INSTANTIATE(WorkerStack);

TEST_P(WorkerStack, DeepRecursionFromASmallFiber) {
  run([] {
    gort::WaitGroup wg;
    std::atomic<uint64_t> result{0};
    wg.add(1);
    // 64 KiB would overflow at ~230 levels; 10 000 levels run on the worker stack.
    gort::spawn(gort::SpawnOptions{.stack_size = 64 * 1024}, [&] {
      result = gort::on_worker_stack([] { return deep(10000); });
      wg.done();
    });
    wg.wait();
    EXPECT_EQ(result, 50005000u);
  });
}

TEST_P(WorkerStack, FiberStackStaysShallow) {
  run([] {
    int before = gort_test::resident_pages(d::current_fiber()->stack.usable_bottom(), d::current_fiber()->stack.top());
    uint64_t r = gort::on_worker_stack([] { return deep(2000); });
    EXPECT_EQ(r, 2001000u);
    int after = gort_test::resident_pages(d::current_fiber()->stack.usable_bottom(), d::current_fiber()->stack.top());
    EXPECT_LE(after - before, 1) << "the recursion ran on the fiber's stack";
  });
}

TEST_P(WorkerStack, ExceptionsAndVoidAndNesting) {
  run([] {
    EXPECT_THROW(gort::on_worker_stack([]() -> int { throw std::runtime_error("deep"); }), std::runtime_error);
    int calls = 0;
    gort::on_worker_stack([&] {
      ++calls;
      EXPECT_TRUE(gort::detail::on_worker_stack_now());
      gort::on_worker_stack([&] { ++calls; });  // nested: runs in place
    });
    EXPECT_EQ(calls, 2);
    EXPECT_FALSE(gort::detail::on_worker_stack_now());
  });
}

TEST_P(WorkerStack, ManyFibersInterleaved) {
  run([] {
    constexpr int kFibers = 200 / kScale;
    gort::WaitGroup wg;
    std::atomic<int> ok{0};
    wg.add(kFibers);
    for (int i = 0; i < kFibers; ++i) {
      gort::spawn(gort::SpawnOptions{.stack_size = 32 * 1024}, [&, i] {
        for (int k = 0; k < 5; ++k) {
          uint32_t n = uint32_t(300 + i + k);
          if (gort::on_worker_stack([n] { return deep(n); }) == uint64_t(n) * (n + 1) / 2) ok++;
          gort::yield();  // between calls the fiber may move to another worker
        }
        wg.done();
      });
    }
    wg.wait();
    EXPECT_EQ(ok, kFibers * 5);
  });
}

// A server calls on_worker_stack for every request, so one worker's stack
// serves hundreds of thousands of calls: nothing may build up per call (a
// context abandoned per call would leave a frame each time on TSan's shadow
// call stack, which holds 64 Ki frames).
TEST_P(WorkerStack, HundredsOfThousandsOfCallsOnOneWorker) {
  run([] {
    constexpr int kCalls = 200000;  // > 64 Ki even in sanitizer builds: the bug needs that many
    uint64_t sum = 0;
    for (int i = 0; i < kCalls; ++i) sum += gort::on_worker_stack([i] { return deep(uint32_t(i % 4)); });
    uint64_t expected = 0;
    for (int i = 0; i < kCalls; ++i) expected += uint64_t(i % 4) * (i % 4 + 1) / 2;
    EXPECT_EQ(sum, expected);
  });
}

TEST(WorkerStackOutsideFibers, RunsInPlace) {
  EXPECT_EQ(gort::on_worker_stack([] { return deep(100); }), 5050u);
}
