// What looking inside a large program costs: N fibers parked on a channel
// (half of them one call deeper, so the dump unwinds two distinct stacks),
// then, timed per iteration,
//   debug_fibers_text/fibers:N   gort::debug::fibers_text(): every fiber's
//                                line and its backtrace (a copy of its stack,
//                                an unwind, names looked up once per address)
//   metrics/fibers:N             gort::metrics(): its walk of the fiber
//                                records by wait reason and the mincore of
//                                the stack slabs
// One item = one fiber (run_micro.py shows ns per fiber). Counter:
//   dump_bytes                   the length of the dump's text
// No Go peer: Go's equivalents stop the world, and the figure that matters
// here is the absolute one (docs/ARCHITECTURE.md, "Backtraces").
#include <benchmark/benchmark.h>
#include <gort/debug.h>
#include <gort/gort.h>
#include <gort/metrics.h>

#include <chrono>
#include <string>

namespace {

using Clock = std::chrono::steady_clock;

__attribute__((noinline)) void wait_for_the_gate(gort::Chan<int>& gate) {
  (void)gate.recv();
  asm volatile("" ::: "memory");  // keeps the call a frame of its own
}
__attribute__((noinline)) void one_call_deeper(gort::Chan<int>& gate) {
  wait_for_the_gate(gate);
  asm volatile("" ::: "memory");
}

enum class What { kDump, kMetrics };

void bm_look_inside(benchmark::State& state, What what) {
  const int n = int(state.range(0));
  gort::run(gort::Config{.workers = 2}, [&] {
    gort::Chan<int> gate;
    gort::WaitGroup parked, finished;
    parked.add(n);
    finished.add(n);
    for (int i = 0; i < n; ++i)
      gort::spawn([&, i] {
        parked.done();
        if (i % 2 == 0) {
          wait_for_the_gate(gate);
        } else {
          one_call_deeper(gate);
        }
        finished.done();
      });
    parked.wait();
    gort::sleep_for(std::chrono::milliseconds(50));  // the last ones reach their park
    std::size_t bytes = 0;
    for (auto _ : state) {
      auto t0 = Clock::now();
      if (what == What::kDump) {
        bytes = gort::debug::fibers_text().size();
      } else {
        benchmark::DoNotOptimize(gort::metrics());
      }
      state.SetIterationTime(std::chrono::duration<double>(Clock::now() - t0).count());
    }
    gate.close();
    finished.wait();
    if (what == What::kDump) state.counters["dump_bytes"] = double(bytes);
  });
  state.SetItemsProcessed(state.iterations() * n);
}

void debug_fibers_text(benchmark::State& state) { bm_look_inside(state, What::kDump); }
void metrics(benchmark::State& state) { bm_look_inside(state, What::kMetrics); }

}  // namespace

BENCHMARK(debug_fibers_text)->ArgName("fibers")->Arg(1000)->Arg(100000)->UseManualTime()->Unit(benchmark::kMillisecond);
BENCHMARK(metrics)->ArgName("fibers")->Arg(1000)->Arg(100000)->UseManualTime()->Unit(benchmark::kMillisecond);
