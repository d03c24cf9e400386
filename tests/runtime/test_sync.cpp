// Mutex, CondVar and WaitGroup, from fibers and from plain threads.
#include <atomic>
#include <deque>
#include <thread>
#include <vector>

#include <gort/metrics.h>

#include "export_test.h"
#include "support.h"

using namespace std::chrono_literals;
using gort_test::kScale;
using gort_test::WorkersTest;

class Sync : public WorkersTest {};
GORT_INSTANTIATE(Sync);

TEST_P(Sync, MutexStressCounter) {
  run([] {
    constexpr int kFibers = 64, kIters = 2000 / kScale;
    gort::Mutex mu;
    long counter = 0;  // guarded by mu; a lost update would show in the total
    gort::WaitGroup wg;
    wg.add(kFibers);
    for (int f = 0; f < kFibers; ++f)
      go_spawn([&, f] {
        for (int i = 0; i < kIters; ++i) {
          std::lock_guard lock(mu);
          long seen = counter;
          if ((i + f) % 7 == 0) gort::yield();  // hold the lock across a switch
          counter = seen + 1;
        }
        wg.done();
      });
    wg.wait();
    EXPECT_EQ(counter, long(kFibers) * kIters);
  });
}

TEST_P(Sync, MutexTryLockAndUniqueLock) {
  run([] {
    gort::Mutex mu;
    EXPECT_TRUE(mu.try_lock());
    EXPECT_FALSE(mu.try_lock());
    std::atomic<bool> got{false};
    gort::WaitGroup wg;
    wg.add(1);
    go_spawn([&] {
      {
        std::unique_lock lock(mu);  // parks until the main fiber unlocks
        got = true;
      }  // unlocked before done(): once wait() returns, `mu` is gone
      wg.done();
    });
    gort::sleep_for(20ms);
    EXPECT_FALSE(got);
    mu.unlock();
    wg.wait();
    EXPECT_TRUE(got);
  });
}

TEST_P(Sync, MutexSharedWithPlainThreads) {
  run([] {
    gort::Mutex mu;
    long counter = 0;
    constexpr int kIters = 5000 / kScale;
    gort::WaitGroup wg;
    wg.add(8);
    for (int f = 0; f < 8; ++f)
      go_spawn([&] {
        for (int i = 0; i < kIters; ++i) {
          std::lock_guard lock(mu);
          ++counter;
        }
        wg.done();
      });
    std::thread t([&] {
      for (int i = 0; i < kIters; ++i) {
        std::lock_guard lock(mu);
        ++counter;
      }
    });
    wg.wait();
    t.join();
    EXPECT_EQ(counter, 9L * kIters);
  });
}

TEST_P(Sync, CondVarProducerConsumer) {
  run([] {
    gort::Mutex mu;
    gort::CondVar not_empty, not_full;
    std::deque<int> queue;  // bounded at 8, guarded by mu
    constexpr int kProducers = 4, kConsumers = 4, kItems = 2000 / kScale;
    long produced = 0, consumed = 0;
    int consumers_left = kConsumers;
    gort::WaitGroup wg;
    wg.add(kProducers + kConsumers);
    for (int p = 0; p < kProducers; ++p)
      go_spawn([&, p] {
        for (int i = 0; i < kItems; ++i) {
          std::unique_lock lock(mu);
          not_full.wait(lock, [&] { return queue.size() < 8; });
          queue.push_back(p * kItems + i);
          produced += p * kItems + i;
          not_empty.notify_one();
        }
        wg.done();
      });
    for (int c = 0; c < kConsumers; ++c)
      go_spawn([&] {
        for (int i = 0; i < kItems; ++i) {
          std::unique_lock lock(mu);
          not_empty.wait(lock, [&] { return !queue.empty(); });
          consumed += queue.front();
          queue.pop_front();
          not_full.notify_one();
        }
        {
          std::lock_guard lock(mu);
          --consumers_left;
        }
        wg.done();  // after unlocking: mu dies with the main fiber's frame
      });
    wg.wait();
    EXPECT_EQ(consumers_left, 0);
    EXPECT_TRUE(queue.empty());
    EXPECT_EQ(produced, consumed);
    long n = long(kProducers) * kItems;
    EXPECT_EQ(consumed, n * (n - 1) / 2);
  });
}

TEST_P(Sync, CondVarNotifyAllWakesEveryone) {
  run([] {
    gort::Mutex mu;
    gort::CondVar cv;
    bool go = false;
    int woken = 0;
    constexpr int kWaiters = 100;
    gort::WaitGroup waiting, wg;
    waiting.add(kWaiters);
    wg.add(kWaiters);
    for (int i = 0; i < kWaiters; ++i)
      go_spawn([&] {
        {
          std::unique_lock lock(mu);
          waiting.done();
          cv.wait(lock, [&] { return go; });
          ++woken;
        }
        wg.done();
      });
    waiting.wait();
    {
      std::lock_guard lock(mu);
      go = true;
    }
    cv.notify_all();
    wg.wait();
    EXPECT_EQ(woken, kWaiters);
  });
}

TEST_P(Sync, WaitGroupManyWaitersAndReuse) {
  run([] {
    for (int round = 0; round < 20; ++round) {
      gort::WaitGroup wg, all_woke;
      std::atomic<int> workers_done{0}, waiters_woke{0};
      constexpr int kWorkers = 20, kWaiters = 10;
      wg.add(kWorkers);
      all_woke.add(kWaiters);
      for (int i = 0; i < kWaiters; ++i)
        go_spawn([&] {
          wg.wait();
          EXPECT_EQ(workers_done, kWorkers);  // wait returns only after every done
          waiters_woke++;
          all_woke.done();
        });
      for (int i = 0; i < kWorkers; ++i)
        go_spawn([&] {
          gort::yield();
          workers_done++;
          wg.done();
        });
      all_woke.wait();
      EXPECT_EQ(waiters_woke, kWaiters);
    }
  });
}

TEST_P(Sync, WaitGroupWaitedOnByAPlainThread) {
  run([] {
    auto wg = std::make_unique<gort::WaitGroup>();
    std::atomic<int> done{0};
    wg->add(10);
    for (int i = 0; i < 10; ++i)
      go_spawn([&] {
        gort::sleep_for(1ms);
        done++;
        wg->done();
      });
    gort::WaitGroup thread_finished;
    thread_finished.add(1);
    std::thread t([&] {
      wg->wait();  // blocks this kernel thread on a futex
      EXPECT_EQ(done, 10);
      thread_finished.done();  // wakes the main fiber from a foreign thread
    });
    thread_finished.wait();
    t.join();
  });
}

TEST_P(Sync, WaitGroupDestroyedRightAfterWait) {
  // The waker must not touch the WaitGroup once the waiter may have returned.
  run([] {
    for (int i = 0; i < 500 / kScale; ++i) {
      auto wg = std::make_unique<gort::WaitGroup>();
      wg->add(1);
      go_spawn([w = wg.get()] { w->done(); });
      wg->wait();
      wg.reset();
    }
  });
}

// Releasing many waiters at once (WaitGroup reaching zero, notify_all)
// takes them off a batch per lock hold and wakes them a batch at a time,
// with a preemption point between batches: one worker, the preemption
// asked for by the test itself, and a fiber queued behind the releaser
// must run before the release returns, and before it has woken any waiter
// (it finds them all still parked).
class SyncRelease : public WorkersTest {
 protected:
  static constexpr int kWaiters = 1000;  // several batches
};
INSTANTIATE_TEST_SUITE_P(OneWorker, SyncRelease, ::testing::Values(1),
                         [](const ::testing::TestParamInfo<int>& i) { return "w" + std::to_string(i.param); });

TEST_P(SyncRelease, WaitGroupReleasingManyWaitersYieldsTheWorkerWhenAsked) {
  run([] {
    gort::WaitGroup gate, parked, finished;
    gate.add(1);
    parked.add(kWaiters);
    finished.add(kWaiters);
    for (int i = 0; i < kWaiters; ++i)
      go_spawn([&] {
        parked.done();
        gate.wait();
        finished.done();
      });
    parked.wait();  // one worker: the last one has parked when this returns
    std::atomic<int64_t> parked_then{-1};
    go_spawn([&] { parked_then = gort::metrics().fibers_parked; });
    gort::detail::request_preemption();
    gate.done();
    EXPECT_NE(parked_then.load(), -1) << "WaitGroup::done held the worker through all " << kWaiters << " waiters";
    EXPECT_EQ(parked_then.load(), kWaiters) << "WaitGroup::done woke waiters before it first yielded";
    finished.wait();
  });
}

TEST_P(SyncRelease, NotifyAllForManyWaitersYieldsTheWorkerWhenAsked) {
  run([] {
    gort::Mutex mu;
    gort::CondVar cv;
    bool go = false;
    int woke = 0;
    gort::WaitGroup parked, finished;
    parked.add(kWaiters);
    finished.add(kWaiters);
    for (int i = 0; i < kWaiters; ++i)
      go_spawn([&] {
        std::unique_lock lk(mu);
        parked.done();
        cv.wait(lk, [&] { return go; });
        ++woke;
        lk.unlock();
        finished.done();
      });
    parked.wait();
    {
      std::lock_guard lk(mu);
      go = true;
    }
    std::atomic<int64_t> parked_then{-1};
    go_spawn([&] { parked_then = gort::metrics().fibers_parked; });
    gort::detail::request_preemption();
    cv.notify_all();
    EXPECT_NE(parked_then.load(), -1) << "notify_all held the worker through all " << kWaiters << " waiters";
    EXPECT_EQ(parked_then.load(), kWaiters) << "notify_all woke waiters before it first yielded";
    finished.wait();
    EXPECT_EQ(woke, kWaiters);
  });
}
