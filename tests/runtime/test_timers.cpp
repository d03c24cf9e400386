// Sleeping and the timer heaps. Bounds are generous: tests check behaviour,
// not latency (latency belongs in the benchmarks).
#include <sched.h>

#include <algorithm>
#include <atomic>
#include <random>
#include <set>
#include <thread>
#include <vector>

#include "export_test.h"
#include "support.h"

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;
using gort_test::kScale;
using gort_test::WorkersTest;

class Timers : public WorkersTest {};
GORT_INSTANTIATE(Timers);

TEST_P(Timers, SleepForLastsAtLeastItsDuration) {
  run([] {
    auto start = Clock::now();
    gort::sleep_for(30ms);
    auto took = Clock::now() - start;
    EXPECT_GE(took, 30ms);
    EXPECT_LT(took, 3s);
  });
}

TEST_P(Timers, SleepUntilThePastReturns) {
  run([] {
    auto start = Clock::now();
    gort::sleep_until(start - 1s);
    gort::sleep_for(-5ms);
    gort::sleep_for(0ms);
    EXPECT_LT(Clock::now() - start, 3s);
  });
}

TEST_P(Timers, SleepersHoldNoThread) {
  run([] {
    // 1000 fibers sleep 200 ms at once: serially that would be 200 s.
    constexpr int kSleepers = 1000 / kScale;
    gort::WaitGroup wg;
    std::atomic<int> early{0};
    wg.add(kSleepers);
    auto start = Clock::now();
    for (int i = 0; i < kSleepers; ++i)
      go_spawn([&] {
        auto t0 = Clock::now();
        gort::sleep_for(200ms);
        if (Clock::now() - t0 < 200ms) early++;
        wg.done();
      });
    wg.wait();
    EXPECT_EQ(early, 0);
    EXPECT_LT(Clock::now() - start, 20s);
  });
}

TEST_P(Timers, OtherFibersRunWhileOneSleeps) {
  run([] {
    std::atomic<bool> sleeper_done{false};
    std::atomic<long> progress{0};
    gort::WaitGroup wg;
    wg.add(2);
    go_spawn([&] {
      gort::sleep_for(300ms);
      sleeper_done = true;
      wg.done();
    });
    go_spawn([&] {
      while (!sleeper_done) {
        progress++;
        gort::yield();
      }
      wg.done();
    });
    wg.wait();
    EXPECT_GT(progress, 0);
  });
}

TEST_P(Timers, StressRandomSleepsNeverWakeEarly) {
  run([] {
    constexpr int kFibers = 500 / kScale, kSleeps = 10;
    gort::WaitGroup wg;
    std::atomic<int> early{0}, completed{0};
    wg.add(kFibers);
    for (int f = 0; f < kFibers; ++f)
      go_spawn([&, f] {
        std::mt19937 rng(f);
        for (int i = 0; i < kSleeps; ++i) {
          auto d = std::chrono::microseconds(rng() % 3000);
          auto deadline = Clock::now() + d;
          gort::sleep_until(deadline);
          if (Clock::now() < deadline) early++;
        }
        completed++;
        wg.done();
      });
    wg.wait();
    EXPECT_EQ(early, 0);
    EXPECT_EQ(completed, kFibers);
  });
}

TEST(TimersOutsideFibers, SleepBlocksThePlainThread) {
  auto start = Clock::now();
  gort::sleep_for(10ms);
  EXPECT_GE(Clock::now() - start, 10ms);
}

TEST(TimerHeap, OrdersByDeadlineAndRemoves) {
  using gort::detail::TimerHeap;
  using gort::detail::TimerNode;
  struct Node : TimerNode {
    std::vector<int>* fired;
    int id;
  };
  std::vector<int> fired;
  std::vector<Node> nodes(100);
  TimerHeap heap;
  std::mt19937 rng(1);
  for (int i = 0; i < 100; ++i) {
    nodes[i].when = int64_t(rng() % 1000);
    nodes[i].fired = &fired;
    nodes[i].id = i;
    nodes[i].fire = [](TimerNode* n) {
      auto* node = static_cast<Node*>(n);
      node->fired->push_back(node->id);
    };
    heap.add(&nodes[i]);
  }
  for (int i = 0; i < 100; i += 3) EXPECT_TRUE(TimerHeap::remove(&nodes[i]));
  EXPECT_FALSE(TimerHeap::remove(&nodes[0])) << "removed twice";
  EXPECT_EQ(heap.run_expired(499),
            int(std::count_if(nodes.begin(), nodes.end(), [&](Node& n) { return n.id % 3 != 0 && n.when <= 499; })));
  heap.run_expired(1000);
  EXPECT_EQ(heap.next_when(), gort::detail::kNever);
  EXPECT_EQ(fired.size(), 66u);
  for (std::size_t i = 1; i < fired.size(); ++i) EXPECT_LE(nodes[fired[i - 1]].when, nodes[fired[i]].when);
}

// Adds, removes from anywhere and pops, interleaved at random, against a
// sorted model: every pop is the earliest deadline left, every remove of a
// node in the heap succeeds, and next_when is the model's least. Removing
// from the middle moves the heap's last entry into the hole, which must then
// go up or down: both happen here thousands of times.
TEST(TimerHeap, MatchesASortedModelUnderRandomAddsRemovesAndPops) {
  using gort::detail::TimerHeap;
  using gort::detail::TimerNode;
  struct Node : TimerNode {
    std::multiset<std::pair<int64_t, Node*>>* model;
  };
  constexpr int kNodes = 2000;
  std::vector<Node> nodes(kNodes);
  std::multiset<std::pair<int64_t, Node*>> model;
  TimerHeap heap;
  std::mt19937 rng(7);
  int64_t now = 0;
  int fired = 0;
  for (auto& n : nodes) {
    n.model = &model;
    n.fire = [](TimerNode* t) {
      auto* node = static_cast<Node*>(t);
      auto first = node->model->begin();
      ASSERT_NE(first, node->model->end());
      EXPECT_EQ(first->first, node->when) << "popped out of order";
      node->model->erase(node->model->find({node->when, node}));
    };
  }
  for (int step = 0; step < 200000; ++step) {
    Node& n = nodes[rng() % kNodes];
    bool in_heap = n.owner.load() != nullptr;
    switch (rng() % 3) {
      case 0:
        if (!in_heap) {
          n.when = now + int64_t(rng() % 5000);
          heap.add(&n);
          model.insert({n.when, &n});
        }
        break;
      case 1:
        EXPECT_EQ(TimerHeap::remove(&n), in_heap);
        if (in_heap) model.erase(model.find({n.when, &n}));
        break;
      case 2:
        now += int64_t(rng() % 20);
        fired += heap.run_expired(now, 1 + int(rng() % 8));
        break;
    }
    ASSERT_EQ(heap.next_when(), model.empty() ? gort::detail::kNever : model.begin()->first);
  }
  EXPECT_GT(fired, 10000);
  EXPECT_EQ(heap.pending(), model.size());
  heap.run_expired(gort::detail::kNever - 1);
  EXPECT_TRUE(model.empty());
}

// run_expired fires at most the number asked, earliest first, and leaves
// the rest due.
TEST(TimerHeap, RunExpiredStopsAtItsBound) {
  using gort::detail::TimerHeap;
  using gort::detail::TimerNode;
  struct Node : TimerNode {
    std::vector<int64_t>* fired;
  };
  std::vector<int64_t> fired;
  std::vector<Node> nodes(10);
  TimerHeap heap;
  for (int i = 0; i < 10; ++i) {
    nodes[i].when = 100 - i;
    nodes[i].fired = &fired;
    nodes[i].fire = [](TimerNode* n) { static_cast<Node*>(n)->fired->push_back(n->when); };
    heap.add(&nodes[i]);
  }
  EXPECT_EQ(heap.run_expired(1000, 3), 3);
  EXPECT_EQ(fired, (std::vector<int64_t>{91, 92, 93}));
  EXPECT_EQ(heap.next_when(), 94);
  EXPECT_EQ(heap.run_expired(1000, 0), 0);
  EXPECT_EQ(heap.run_expired(1000), 7);
  EXPECT_EQ(heap.next_when(), gort::detail::kNever);
}

// A burst of sleepers whose timers end together, more than the local ring
// holds, while a backlog of fibers not yet started waits in the injector (a
// fan-out): every sleeper resumes long before the backlog drains. Were the
// burst readied all at once, the ring's overflow would send woken fibers,
// with half the ring, to the injector's tail, behind the whole backlog.
TEST(TimersUnderABacklog, ABurstOfDueTimersIsNotQueuedBehindIt) {
  constexpr int kSleepers = 600;   // > RunQueue::kCapacity
  constexpr int kBacklog = 40000;  // 5 us of work each: ten times the 20 ms sleep
  std::atomic<int> backlog_done{0};
  std::vector<int> done_when_woken(kSleepers, -1);
  gort::Metrics end;
  gort::run(gort::Config{.workers = 1}, [&] {
    gort::WaitGroup all;
    all.add(kSleepers + kBacklog);
    auto wake_at = Clock::now() + 20ms;
    for (int i = 0; i < kSleepers; ++i)
      go_spawn([&, i] {
        gort::sleep_until(wake_at);
        done_when_woken[std::size_t(i)] = backlog_done.load(std::memory_order_relaxed);
        all.done();
      });
    gort::sleep_for(1ms);  // they start and park
    // The backlog: queued faster than it runs, most of it in the injector.
    for (int i = 0; i < kBacklog; ++i)
      go_spawn([&] {
        auto until = Clock::now() + 5us;
        while (Clock::now() < until) {
        }
        backlog_done.fetch_add(1, std::memory_order_relaxed);
        all.done();
      });
    all.wait();
    end = gort::metrics();
  });
  int latest = *std::max_element(done_when_woken.begin(), done_when_woken.end());
  EXPECT_GE(*std::min_element(done_when_woken.begin(), done_when_woken.end()), 0) << "a sleeper never ran";
  // What the monitor saw goes with a failure: a worker thread the machine
  // held off its CPU past the stuck threshold has its timers run by the
  // monitor and its queue served by a spare, a path this test does not aim at.
  EXPECT_LT(latest, kBacklog / 2) << "a sleeper resumed only after " << latest << " of the " << kBacklog
                                  << " fibers queued behind it had run (stuck episodes " << end.stuck_episodes
                                  << ", preemptions " << end.preemptions << ")";
}

// Two workers sharing one CPU, sleepers' timers ending together: a worker
// woken for its timers can wait for the CPU behind the other, which, not
// allowed to steal (the first counts as spinning), used to go round its idle
// loop without sleeping (the earliest deadline, the first's, had passed)
// until the kernel preempted it, a time slice later. It runs the due timers
// itself instead: a pass that finds its deadline already past is then rare.
TEST(TimersOnOneCpu, AnIdleWorkerRunsAnotherWorkersDueTimersInsteadOfSpinning) {
  constexpr int kRounds = 20, kSleepers = 1000 / kScale;
  // The workers inherit the affinity; the rest of the binary gets it back.
  struct OneCpu {
    cpu_set_t all;
    bool set = false;
    OneCpu() {
      if (sched_getaffinity(0, sizeof all, &all) != 0) return;
      cpu_set_t one;
      CPU_ZERO(&one);
      for (int c = 0; c < CPU_SETSIZE; ++c)
        if (CPU_ISSET(c, &all)) {
          CPU_SET(c, &one);
          break;
        }
      set = sched_setaffinity(0, sizeof one, &one) == 0;
    }
    ~OneCpu() {
      if (set) sched_setaffinity(0, sizeof all, &all);
    }
  } pin;
  ASSERT_TRUE(pin.set);
  gort::run(gort::Config{.workers = 2}, [&] {
    for (int r = 0; r < kRounds; ++r) {
      gort::WaitGroup wg;
      wg.add(kSleepers);
      for (int i = 0; i < kSleepers; ++i)
        go_spawn([&] {
          gort::sleep_for(2ms);
          wg.done();
        });
      wg.wait();
    }
  });
  EXPECT_LT(gort::detail::last_teardown().sleeps_already_due, kRounds * 20)
      << "idle passes that did not sleep: a worker spun on a timer it would not run";
}

// A thread outside the runtime adds a timer (through after()) just as the
// workers run out of work and park. The worker computes its sleep deadline
// from the timer heaps and then publishes it; a timer added between the two
// must still wake it (parked_until / next_when are a Dekker pair). A lost
// wake-up shows as a hang: the timer never fires and the thread never sends.
TEST_P(Timers, TimerAddedFromThreadWhileWorkersPark) {
  run([] {
    constexpr int kRounds = 300 / kScale;
    gort::Chan<int> done;
    std::thread t([&] {
      for (int i = 0; i < kRounds; ++i) {
        // The main fiber is parking on done.recv() at about this moment.
        auto timeout = gort::after(std::chrono::microseconds(i % 3 * 100));
        EXPECT_TRUE(timeout->recv().has_value());
        done.send(i);
      }
    });
    for (int i = 0; i < kRounds; ++i) EXPECT_EQ(done.recv(), i);
    t.join();
  });
}
