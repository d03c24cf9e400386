// Runtime core micro-benchmarks, with kernel-thread baselines in the same
// binary so ratios come from one run on one machine.
//
// Every benchmark reports items_per_second with one item = one operation as
// its name defines it (bench/run_micro.py turns that into ns per op); the
// definitions match bench/peers/go/main.go:
//   yield/workers:P            one gort::yield() (both fibers' yields count)
//   spawn_join/workers:P       spawn a fiber, let it run, wait for it
//   mutex_handoff/workers:P    one lock acquisition, two fibers alternating
//   thread_futex_pingpong/*    one kernel-thread switch (half a round trip)
//   thread_create_join         std::thread create + join
// Memory per parked fiber is fanout_park's (bench_fanout.cpp).
#include <benchmark/benchmark.h>
#include <gort/gort.h>
#include <linux/futex.h>
#include <sched.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <atomic>
#include <string>
#include <thread>

namespace {

void register_per_workers(const char* name, void (*fn)(benchmark::State&, int)) {
  for (int workers : {1, 2}) {
    benchmark::RegisterBenchmark((std::string(name) + "/workers:" + std::to_string(workers)).c_str(),
                                 [fn, workers](benchmark::State& st) { fn(st, workers); })
        ->UseRealTime();
  }
}

void bm_yield(benchmark::State& state, int workers) {
  gort::run(gort::Config{.workers = workers}, [&] {
    std::atomic<bool> stop{false};
    std::atomic<int64_t> partner_yields{0};
    gort::WaitGroup wg;
    wg.add(1);
    go_spawn([&] {
      int64_t n = 0;
      while (!stop.load(std::memory_order_relaxed)) {
        gort::yield();
        ++n;
      }
      partner_yields = n;
      wg.done();
    });
    gort::yield();  // let the partner start before timing
    for (auto _ : state) gort::yield();
    stop = true;
    wg.wait();
    state.SetItemsProcessed(int64_t(state.iterations()) + partner_yields.load());
  });
}

void bm_spawn_join(benchmark::State& state, int workers) {
  gort::run(gort::Config{.workers = workers}, [&] {
    gort::WaitGroup wg;
    for (auto _ : state) {
      wg.add(1);
      go_spawn([&] { wg.done(); });
      wg.wait();
    }
    state.SetItemsProcessed(int64_t(state.iterations()));
  });
}

void bm_mutex_handoff(benchmark::State& state, int workers) {
  gort::run(gort::Config{.workers = workers}, [&] {
    gort::Mutex mu;
    int64_t counter = 0;
    std::atomic<bool> stop{false};
    std::atomic<int64_t> partner_locks{0};
    gort::WaitGroup wg;
    wg.add(1);
    go_spawn([&] {
      int64_t n = 0;
      while (!stop.load(std::memory_order_relaxed)) {
        mu.lock();
        ++counter;
        mu.unlock();
        ++n;
        gort::yield();
      }
      partner_locks = n;
      wg.done();
    });
    for (auto _ : state) {
      mu.lock();
      ++counter;
      mu.unlock();
      gort::yield();
    }
    stop = true;
    wg.wait();
    benchmark::DoNotOptimize(counter);
    state.SetItemsProcessed(int64_t(state.iterations()) + partner_locks.load());
  });
}

// ---- kernel-thread baselines ----

void futex_wait(std::atomic<uint32_t>* w, uint32_t v) {
  syscall(SYS_futex, reinterpret_cast<uint32_t*>(w), FUTEX_WAIT_PRIVATE, v, nullptr, nullptr, 0);
}
void futex_wake(std::atomic<uint32_t>* w) {
  syscall(SYS_futex, reinterpret_cast<uint32_t*>(w), FUTEX_WAKE_PRIVATE, 1, nullptr, nullptr, 0);
}

bool pin(int cpu) {
  cpu_set_t set;
  CPU_ZERO(&set);
  CPU_SET(cpu, &set);
  return sched_setaffinity(0, sizeof set, &set) == 0;
}

// Two threads hand a token back and forth through a futex: every hand-off
// puts one thread to sleep and wakes the other, i.e. one kernel switch.
void bm_futex_pingpong(benchmark::State& state, bool same_core) {
  cpu_set_t allowed;
  sched_getaffinity(0, sizeof allowed, &allowed);
  int cpus[2] = {-1, -1};
  for (int c = 0, k = 0; c < CPU_SETSIZE && k < 2; ++c)
    if (CPU_ISSET(c, &allowed)) cpus[k++] = c;
  if (!same_core && cpus[1] < 0) {
    state.SkipWithError("needs two CPUs in the affinity mask");
    return;
  }
  int cpu_a = cpus[0], cpu_b = same_core ? cpus[0] : cpus[1];
  std::atomic<uint32_t> turn{0};  // 0: main's turn, 1: partner's, 2: stop
  std::thread partner([&] {
    pin(cpu_b);
    for (;;) {
      uint32_t t;
      while ((t = turn.load(std::memory_order_acquire)) == 0) futex_wait(&turn, 0);
      if (t == 2) return;
      turn.store(0, std::memory_order_release);
      futex_wake(&turn);
    }
  });
  pin(cpu_a);
  for (auto _ : state) {
    turn.store(1, std::memory_order_release);
    futex_wake(&turn);
    while (turn.load(std::memory_order_acquire) == 1) futex_wait(&turn, 1);
  }
  turn.store(2, std::memory_order_release);
  futex_wake(&turn);
  partner.join();
  sched_setaffinity(0, sizeof allowed, &allowed);
  state.SetItemsProcessed(2 * int64_t(state.iterations()));
}

void bm_thread_create_join(benchmark::State& state) {
  for (auto _ : state) {
    std::thread t([] {});
    t.join();
  }
  state.SetItemsProcessed(int64_t(state.iterations()));
}

[[maybe_unused]] const bool registered = [] {
  register_per_workers("yield", bm_yield);
  register_per_workers("spawn_join", bm_spawn_join);
  register_per_workers("mutex_handoff", bm_mutex_handoff);
  benchmark::RegisterBenchmark("thread_futex_pingpong/same_core", [](benchmark::State& s) {
    bm_futex_pingpong(s, true);
  })->UseRealTime();
  benchmark::RegisterBenchmark("thread_futex_pingpong/cross_core", [](benchmark::State& s) {
    bm_futex_pingpong(s, false);
  })->UseRealTime();
  benchmark::RegisterBenchmark("thread_create_join", bm_thread_create_join)->UseRealTime();
  return true;
}();

}  // namespace
