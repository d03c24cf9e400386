// select with a way out: the cost of a select whose data case is ready
// and whose second case is a timeout or a cancellation, one fiber, one
// worker:
//   select_ready/workers:1          baseline: the data case alone
//   select_ready_after/workers:1    plus on_recv(gort::after(1s)), Go's
//                                   `case <-time.After(d)` (a channel and a
//                                   timer per select)
//   select_ready_context/workers:1  plus on_recv(ctx.done()) of a context
//                                   with a deadline (made once, outside)
// A context case costs one more channel in the select and nothing per
// call; an after() case also allocates and arms a timer each time.
#include <benchmark/benchmark.h>
#include <gort/gort.h>

#include <chrono>

namespace {

using namespace std::chrono_literals;

template <class Body>
void run_in_fiber(benchmark::State& state, Body body) {
  gort::run(gort::Config{.workers = 1}, [&] {
    gort::Chan<int> data(1);
    body(state, data);
  });
}

void select_ready(benchmark::State& state) {
  run_in_fiber(state, [](benchmark::State& st, gort::Chan<int>& data) {
    for (auto _ : st) {
      data.try_send(1);
      benchmark::DoNotOptimize(gort::select(gort::on_recv(data)));
    }
  });
}

void select_ready_after(benchmark::State& state) {
  run_in_fiber(state, [](benchmark::State& st, gort::Chan<int>& data) {
    for (auto _ : st) {
      data.try_send(1);
      benchmark::DoNotOptimize(gort::select(gort::on_recv(data), gort::on_recv(gort::after(1s))));
    }
  });
}

void select_ready_context(benchmark::State& state) {
  run_in_fiber(state, [](benchmark::State& st, gort::Chan<int>& data) {
    auto [ctx, cancel] = gort::with_timeout(gort::background(), 1h);
    for (auto _ : st) {
      data.try_send(1);
      benchmark::DoNotOptimize(gort::select(gort::on_recv(data), gort::on_recv(ctx.done())));
    }
    cancel();
  });
}

}  // namespace

BENCHMARK(select_ready)->Name("select_ready/workers:1");
BENCHMARK(select_ready_after)->Name("select_ready_after/workers:1");
BENCHMARK(select_ready_context)->Name("select_ready_context/workers:1");
