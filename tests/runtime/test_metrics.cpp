// gort::metrics() and gort::debug::prometheus_text(): the figures follow
// what the runtime does, and the page passes `promtool check metrics`.
#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <string>
#include <thread>

#include <gort/gort.h>

#include "support.h"

using namespace std::chrono_literals;

namespace {

class MetricsTest : public gort_test::WorkersTest {};

// The first snapshot for which done(m) holds, polled every millisecond, or
// the last one after `tries` (the caller's expectations then fail on it).
template <class Done>
gort::Metrics metrics_once(Done done, int tries) {
  gort::Metrics m = gort::metrics();
  for (int i = 0; i < tries && !done(m); ++i) {
    gort::sleep_for(1ms);
    m = gort::metrics();
  }
  return m;
}

TEST(MetricsOutsideARuntime, AreZero) {
  gort::Metrics m = gort::metrics();
  EXPECT_EQ(m.fibers, 0);
  EXPECT_EQ(m.workers, 0);
  EXPECT_TRUE(m.per_worker.empty());
}

TEST_P(MetricsTest, FollowWhatTheRuntimeDoes) {
  int workers = GetParam();
  run([workers] {
    gort::Metrics before = gort::metrics();
    EXPECT_EQ(before.workers, workers);
    EXPECT_GE(int(before.per_worker.size()), workers);
    EXPECT_EQ(before.fibers, 1);  // the main fiber

    const int n = 200;
    gort::Chan<int> gate;
    gort::WaitGroup wg;
    wg.add(n);
    for (int i = 0; i < n; ++i) {
      go_spawn([&] {
        (void)gate.recv();
        wg.done();
      });
    }
    auto far_timer = gort::after(1h);  // one timer pending somewhere
    // The spawned fibers park on the channel (bounded wait: a fiber binds
    // its stack only when it first runs, so all must have run).
    gort::Metrics parked = metrics_once(
        [](const gort::Metrics& m) { return m.fibers_parked >= n && m.stacks_in_use >= n + 1; }, 10000);
    EXPECT_EQ(parked.fibers, n + 1);
    EXPECT_GE(parked.fibers_spawned, before.fibers_spawned + n);
    EXPECT_GE(parked.stacks_in_use, n + 1);
    EXPECT_GE(parked.timers_pending, 1u);
    EXPECT_GE(parked.fibers_parked, n) << "by state";
    EXPECT_GE(parked.fibers_running, 1) << "by state: the main fiber, reading these";
    // Every parked fiber has touched at least its top page.
    EXPECT_GE(parked.stack_committed_bytes, uint64_t(n + 1) * 4096) << "committed stack bytes";
    gate.close();
    wg.wait();
    // done() comes just before each fiber returns: wait for the last ones
    // to leave (bounded).
    gort::Metrics done = metrics_once([](const gort::Metrics& m) { return m.fibers == 1; }, 1000);
    EXPECT_EQ(done.fibers, 1);
    EXPECT_GE(done.stacks_cached, int64_t(n)) << "the returned fibers' stacks wait in the caches";
    EXPECT_GE(done.switches, before.switches + n) << "every spawned fiber was switched into";
    uint64_t sum = 0;
    for (const auto& w : done.per_worker) sum += w.switches;
    EXPECT_EQ(sum, done.switches);
  });
}

// Busy time follows the work: a fiber that computes for a while adds about
// that much to the workers' busy seconds; while every worker sleeps (the
// main fiber in a long sleep) it hardly moves.
TEST_P(MetricsTest, BusyTimeFollowsTheWork) {
  run([] {
    auto busy = [] {
      double sum = 0;
      for (const gort::WorkerMetrics& w : gort::metrics().per_worker) sum += w.busy_seconds;
      return sum;
    };
    double start = busy();
    auto until = std::chrono::steady_clock::now() + 300ms;
    while (std::chrono::steady_clock::now() < until) gort::yield();  // busy, with runtime calls
    double after_work = busy();
    EXPECT_GE(after_work - start, 0.2) << "300 ms of work counted as less than 200 ms busy";
    gort::sleep_for(500ms);  // every worker asleep
    double after_sleep = busy();
    EXPECT_GE(after_sleep, after_work) << "a counter went back";
    EXPECT_LT(after_sleep - after_work, 0.25) << "500 ms asleep counted as busy";
  });
}

// Parked fibers are counted by what they wait for, in the struct and on
// the page.
TEST_P(MetricsTest, ParkedFibersByReason) {
  run([] {
    const int n = 50;
    gort::Chan<int> gate;
    gort::WaitGroup started, done;
    started.add(n + 1);
    done.add(n + 1);
    for (int i = 0; i < n; ++i)
      go_spawn([&] {
        started.done();
        (void)gate.recv();
        done.done();
      });
    go_spawn([&] {
      started.done();
      gort::sleep_for(300ms);
      done.done();
    });
    started.wait();
    gort::sleep_for(50ms);  // each has reached its wait
    auto count = [](const gort::Metrics& m, const std::string& reason) {
      for (const auto& w : m.parked_by_reason)
        if (w.reason == reason) return w.fibers;
      return int64_t(0);
    };
    gort::Metrics m = gort::metrics();
    EXPECT_EQ(count(m, "chan receive"), n);
    EXPECT_EQ(count(m, "sleep"), 1);  // the main fiber, which reads, is running
    std::string page = gort::debug::prometheus_text();
    EXPECT_NE(page.find("gort_fibers_parked{reason=\"chan receive\"} " + std::to_string(n) + "\n"), std::string::npos)
        << page;
    gate.close();
    done.wait();
  });
}

TEST_P(MetricsTest, ThePrometheusPagePassesPromtool) {
  run([] {
    std::string page = gort::debug::prometheus_text();
    EXPECT_NE(page.find("# TYPE gort_fibers gauge\ngort_fibers 1\n"), std::string::npos) << page;
    EXPECT_NE(page.find("gort_worker_run_queue_fibers{worker=\"0\",kind=\"worker\"}"), std::string::npos) << page;
    // One file per process: ctest runs the worker counts (and other builds) at once.
    std::string path = testing::TempDir() + "gort_metrics." + std::to_string(getpid()) + ".prom";
    std::FILE* f = std::fopen(path.c_str(), "w");
    ASSERT_NE(f, nullptr);
    std::fwrite(page.data(), 1, page.size(), f);
    std::fclose(f);
    // promtool reads the page on stdin; it prints problems and exits non-zero.
    std::string command = std::string(GORT_PROMTOOL) + " check metrics < " + path + " 2>&1";
    std::string said;
    int status = gort::blocking([&] {
      std::FILE* p = popen(command.c_str(), "r");
      if (p == nullptr) return -1;
      char buf[1024];
      for (std::size_t got; (got = std::fread(buf, 1, sizeof buf, p)) > 0;) said.append(buf, got);
      return pclose(p);
    });
    EXPECT_EQ(status, 0) << "promtool check metrics:\n" << said << "\non:\n" << page;
    EXPECT_EQ(said, "") << page;
    std::remove(path.c_str());
  });
}

GORT_INSTANTIATE(MetricsTest);

}  // namespace

// The blocking pool's load: a call a helper runs shows as running, calls
// beyond the helpers as queued, and both drain.
TEST_P(MetricsTest, BlockingCallsRunningAndQueued) {
  run([] {
    std::atomic<bool> release{false};
    gort::WaitGroup wg;
    constexpr int kCalls = 3;
    wg.add(kCalls);
    for (int i = 0; i < kCalls; ++i)
      go_spawn([&] {
        gort::blocking([&] {
          while (!release.load()) std::this_thread::sleep_for(1ms);
        });
        wg.done();
      });
    // Until every call is in the pool and a helper has taken one.
    gort::Metrics busy = metrics_once(
        [](const gort::Metrics& m) {
          return m.blocking_calls_running + m.blocking_calls_queued >= kCalls && m.blocking_calls_running > 0;
        },
        5000);
    EXPECT_EQ(busy.blocking_calls_running + busy.blocking_calls_queued, kCalls);
    EXPECT_GE(busy.blocking_calls_running, 1);
    EXPECT_LE(busy.blocking_calls_running, busy.blocking_threads);
    release.store(true);
    wg.wait();
    gort::Metrics idle = metrics_once([](const gort::Metrics& m) { return m.blocking_calls_running == 0; }, 5000);
    EXPECT_EQ(idle.blocking_calls_running, 0);
    EXPECT_EQ(idle.blocking_calls_queued, 0);
  });
}
