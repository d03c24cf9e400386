// Fan-out micro-benchmarks: one fiber spawns N before any of them finishes,
// then waits for all, as a request that spawns a fiber per backend call or
// a server hit by a burst of connections does. Each matches the benchmark
// of the same name in bench/peers/go/main.go:
//   fanout_exit_<N>/workers:P   spawn N fibers that finish at once (WaitGroup)
//   fanout_park_<N>/workers:P   spawn N fibers that all park on one channel,
//                               wait until all are parked, close it, wait for all
//   fanout_sleep_<N>/workers:P  spawn N fibers that each sleep 10 ms, wait for all
// for N in 1k, 10k, 100k, 1M. One item = one fiber (run_micro.py shows ns
// per fiber). Counters:
//   peak_rss_kib          the process's peak RSS during the benchmark (VmHWM,
//                         reset at its start through /proc/self/clear_refs)
//   rss_kib_per_fiber     fanout_park: RSS added per parked fiber in the first
//                         round (later ones reuse what it made resident)
//   pagetable_kib_per_fiber  fanout_park: page tables (VmPTE) added likewise
//   overshoot_{mean,p99,max}_us  fanout_sleep: how late the sleeps ended
// The runtime is booted once per benchmark and every iteration fans out
// again: later iterations find stacks in the caches, as a server's later
// bursts do. Timing is manual: reading /proc in fanout_park is left out.
#include <benchmark/benchmark.h>
#include <gort/chan.h>
#include <gort/gort.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <string>
#include <vector>

namespace {

using Clock = std::chrono::steady_clock;
constexpr auto kSleep = std::chrono::milliseconds(10);

long status_kib(const char* field) {
  std::ifstream status("/proc/self/status");
  std::string line, prefix = std::string(field) + ":";
  while (std::getline(status, line))
    if (line.rfind(prefix, 0) == 0) return std::atol(line.c_str() + prefix.size());
  return -1;
}

// Resets VmHWM to the current RSS (Linux >= 4.0).
void reset_peak_rss() {
  if (FILE* f = std::fopen("/proc/self/clear_refs", "w")) {
    std::fputs("5", f);
    std::fclose(f);
  }
}

double seconds_since(Clock::time_point t0) { return std::chrono::duration<double>(Clock::now() - t0).count(); }

// Returns the timed seconds of one fan-out.
double fanout_exit(int n) {
  auto t0 = Clock::now();
  gort::WaitGroup wg;
  wg.add(n);
  for (int i = 0; i < n; ++i) go_spawn([&] { wg.done(); });
  wg.wait();
  return seconds_since(t0);
}

struct PerFiber {
  double rss_kib = 0;        // resident memory added per parked fiber
  double pagetable_kib = 0;  // page tables added per parked fiber
};

double fanout_park(int n, PerFiber* added) {
  long rss0 = status_kib("VmRSS"), pte0 = status_kib("VmPTE");
  auto t0 = Clock::now();
  gort::Chan<int> gate;
  gort::WaitGroup parked, finished;
  parked.add(n);
  finished.add(n);
  for (int i = 0; i < n; ++i)
    go_spawn([&] {
      parked.done();
      gate.recv();  // returns when the gate is closed
      finished.done();
    });
  parked.wait();
  double before_release = seconds_since(t0);
  added->rss_kib = double(status_kib("VmRSS") - rss0) / n;
  added->pagetable_kib = double(status_kib("VmPTE") - pte0) / n;
  auto t1 = Clock::now();
  gate.close();
  finished.wait();
  return before_release + seconds_since(t1);
}

double fanout_sleep(int n, std::vector<int64_t>& overshoot_ns) {
  overshoot_ns.assign(std::size_t(n), 0);
  auto t0 = Clock::now();
  gort::WaitGroup wg;
  wg.add(n);
  for (int i = 0; i < n; ++i)
    go_spawn([&, i] {
      auto start = Clock::now();
      gort::sleep_for(kSleep);
      overshoot_ns[std::size_t(i)] =
          std::chrono::duration_cast<std::chrono::nanoseconds>(Clock::now() - start - kSleep).count();
      wg.done();
    });
  wg.wait();
  return seconds_since(t0);
}

enum class Kind { kExit, kPark, kSleep };

void bm_fanout(benchmark::State& state, Kind kind, int n, int workers) {
  reset_peak_rss();
  gort::run(gort::Config{.workers = workers}, [&] {
    std::vector<PerFiber> per_fiber;
    std::vector<int64_t> overshoot, all_overshoot;
    for (auto _ : state) {
      double secs = 0;
      switch (kind) {
        case Kind::kExit: secs = fanout_exit(n); break;
        case Kind::kPark: secs = fanout_park(n, &per_fiber.emplace_back()); break;
        case Kind::kSleep:
          secs = fanout_sleep(n, overshoot);
          all_overshoot.insert(all_overshoot.end(), overshoot.begin(), overshoot.end());
          break;
      }
      state.SetIterationTime(secs);
    }
    state.SetItemsProcessed(int64_t(state.iterations()) * n);
    state.counters["peak_rss_kib"] = double(status_kib("VmHWM"));
    if (!per_fiber.empty()) {
      state.counters["rss_kib_per_fiber"] = per_fiber.front().rss_kib;
      state.counters["pagetable_kib_per_fiber"] = per_fiber.front().pagetable_kib;
    }
    if (!all_overshoot.empty()) {
      std::sort(all_overshoot.begin(), all_overshoot.end());
      double sum = 0;
      for (int64_t v : all_overshoot) sum += double(v);
      state.counters["overshoot_mean_us"] = sum / double(all_overshoot.size()) / 1e3;
      state.counters["overshoot_p99_us"] = double(all_overshoot[all_overshoot.size() * 99 / 100]) / 1e3;
      state.counters["overshoot_max_us"] = double(all_overshoot.back()) / 1e3;
    }
  });
}

// Fibers per benchmark run, spread over iterations: about 200 000 per run
// (one iteration at 1M), at most 50 iterations of 10 ms sleeps; the same
// counts as the Go peer's (fanoutIterations).
int iterations_for(Kind kind, int n) {
  int k = std::max(1, 200'000 / n);
  return kind == Kind::kSleep ? std::min(k, 50) : k;
}

[[maybe_unused]] const bool registered = [] {
  struct Size {
    const char* label;
    int n;
  };
  const Size sizes[] = {{"1k", 1000}, {"10k", 10000}, {"100k", 100000}, {"1M", 1000000}};
  const std::pair<const char*, Kind> kinds[] = {
      {"fanout_exit", Kind::kExit}, {"fanout_park", Kind::kPark}, {"fanout_sleep", Kind::kSleep}};
  for (auto [name, kind] : kinds)
    for (const Size& size : sizes)
      for (int workers : {1, 2}) {
        std::string label = std::string(name) + "_" + size.label + "/workers:" + std::to_string(workers);
        benchmark::RegisterBenchmark(
            label.c_str(), [kind, n = size.n, workers](benchmark::State& st) { bm_fanout(st, kind, n, workers); })
            ->UseManualTime()
            ->Iterations(iterations_for(kind, size.n))
            ->Unit(benchmark::kMicrosecond);
      }
  return true;
}();

}  // namespace
