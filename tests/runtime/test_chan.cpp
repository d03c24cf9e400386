// Channels: hand-off, buffering, close semantics, move-only values, plain
// threads, range-for. Every case runs across worker counts (support.h).
#include <gort/chan.h>

#include <atomic>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "export_test.h"
#include "support.h"

using namespace std::chrono_literals;
using gort_test::kScale;
using gort_test::WorkersTest;

class Chan : public WorkersTest {};
GORT_INSTANTIATE(Chan);

namespace {

// n producers send 1..per each, m consumers receive until closed; the sum
// and count show that nothing was lost or duplicated.
void producers_consumers(std::size_t capacity, int producers, int consumers, int per) {
  auto ch = gort::make_chan<int64_t>(capacity);
  std::atomic<int64_t> sum{0}, count{0};
  gort::WaitGroup sent, received;
  sent.add(producers);
  received.add(consumers);
  for (int p = 0; p < producers; ++p)
    go_spawn([&, ch] {
      for (int i = 1; i <= per; ++i) ch->send(i);
      sent.done();
    });
  for (int c = 0; c < consumers; ++c)
    go_spawn([&, ch] {
      int64_t local = 0, n = 0;
      for (int64_t v : *ch) {
        local += v;
        ++n;
      }
      sum += local;
      count += n;
      received.done();
    });
  sent.wait();
  ch->close();
  received.wait();
  EXPECT_EQ(count.load(), int64_t(producers) * per);
  EXPECT_EQ(sum.load(), int64_t(producers) * per * (per + 1) / 2);
}

}  // namespace

TEST_P(Chan, UnbufferedOneToOne) {
  run([] { producers_consumers(0, 1, 1, 20000 / kScale); });
}

TEST_P(Chan, UnbufferedManyToMany) {
  run([] { producers_consumers(0, 8, 8, 5000 / kScale); });
}

TEST_P(Chan, BufferedOneToOne) {
  run([] { producers_consumers(128, 1, 1, 50000 / kScale); });
}

TEST_P(Chan, BufferedManyToMany) {
  run([] { producers_consumers(16, 8, 8, 5000 / kScale); });
}

TEST_P(Chan, CapacityOneManyToMany) {
  run([] { producers_consumers(1, 16, 4, 2000 / kScale); });
}

TEST_P(Chan, FifoOrderFromOneSender) {
  run([] {
    for (std::size_t cap : {0, 1, 7, 64}) {
      gort::Chan<int> ch(cap);
      constexpr int kN = 5000 / kScale;
      gort::WaitGroup wg;
      wg.add(1);
      go_spawn([&] {
        for (int i = 0; i < kN; ++i) ch.send(i);
        ch.close();
        wg.done();
      });
      int expect = 0;
      for (int v : ch) EXPECT_EQ(v, expect++);
      EXPECT_EQ(expect, kN);
      wg.wait();
    }
  });
}

TEST_P(Chan, UnbufferedSendWaitsForReceiver) {
  run([] {
    gort::Chan<int> ch;
    std::atomic<bool> sent{false};
    gort::WaitGroup wg;
    wg.add(1);
    go_spawn([&] {
      ch.send(7);
      sent = true;
      wg.done();
    });
    gort::sleep_for(30ms);
    EXPECT_FALSE(sent);
    EXPECT_EQ(ch.recv(), 7);
    wg.wait();
    EXPECT_TRUE(sent);
  });
}

TEST_P(Chan, BufferedSendBlocksOnlyWhenFull) {
  run([] {
    gort::Chan<int> ch(2);
    ch.send(1);
    ch.send(2);
    EXPECT_EQ(ch.size(), 2u);
    EXPECT_EQ(ch.capacity(), 2u);
    std::atomic<bool> third{false};
    gort::WaitGroup wg;
    wg.add(1);
    go_spawn([&] {
      ch.send(3);
      third = true;
      wg.done();
    });
    gort::sleep_for(30ms);
    EXPECT_FALSE(third);
    EXPECT_EQ(ch.recv(), 1);  // frees a slot: the parked sender's 3 goes to the tail
    wg.wait();
    EXPECT_EQ(ch.recv(), 2);
    EXPECT_EQ(ch.recv(), 3);
    EXPECT_EQ(ch.size(), 0u);
  });
}

TEST_P(Chan, CloseDrainsThenEmpty) {
  run([] {
    gort::Chan<int> ch(4);
    ch.send(1);
    ch.send(2);
    ch.close();
    EXPECT_TRUE(ch.closed());
    EXPECT_EQ(ch.recv(), 1);
    EXPECT_EQ(ch.try_recv(), 2);
    EXPECT_EQ(ch.recv(), std::nullopt);
    EXPECT_EQ(ch.try_recv(), std::nullopt);
    EXPECT_THROW(ch.send(3), gort::ChanClosed);
    EXPECT_THROW(ch.try_send(3), gort::ChanClosed);
    EXPECT_THROW(ch.close(), gort::ChanClosed);
  });
}

TEST_P(Chan, CloseWakesBlockedReceiversAndSenders) {
  run([] {
    constexpr int kEach = 16;
    gort::Chan<int> to_recv, to_send;  // unbuffered: every party parks
    std::atomic<int> got_nullopt{0}, threw{0};
    gort::WaitGroup wg;
    wg.add(2 * kEach);
    for (int i = 0; i < kEach; ++i) {
      go_spawn([&] {
        if (!to_recv.recv()) got_nullopt++;
        wg.done();
      });
      go_spawn([&] {
        try {
          to_send.send(1);
        } catch (const gort::ChanClosed&) {
          threw++;
        }
        wg.done();
      });
    }
    gort::sleep_for(30ms);  // let them all park (not needed for correctness)
    to_recv.close();
    to_send.close();
    wg.wait();
    EXPECT_EQ(got_nullopt, kEach);
    EXPECT_EQ(threw, kEach);
  });
}

// Closing a channel that many fibers wait on is done in batches, with a
// preemption point between them (chan.cpp, close). These cases run on one
// worker and ask for the preemption themselves (the monitor's request,
// without waiting a time slice for it), so that what runs in between is
// exactly the fiber they queued.
class ChanClose : public WorkersTest {
 protected:
  static constexpr int kWaiters = 1000;  // several batches
};
INSTANTIATE_TEST_SUITE_P(OneWorker, ChanClose, ::testing::Values(1),
                         [](const ::testing::TestParamInfo<int>& i) { return "w" + std::to_string(i.param); });

TEST_P(ChanClose, ClosingForManyWaitersYieldsTheWorkerWhenAsked) {
  run([] {
    gort::Chan<int> ch;
    std::atomic<int> got_nullopt{0};
    gort::WaitGroup parked, finished;
    parked.add(kWaiters);
    finished.add(kWaiters);
    for (int i = 0; i < kWaiters; ++i)
      go_spawn([&] {
        parked.done();
        if (!ch.recv()) got_nullopt++;
        finished.done();
      });
    parked.wait();  // one worker: the last one has parked when this returns
    std::atomic<bool> bystander_ran{false};
    go_spawn([&] { bystander_ran = true; });  // queued behind this fiber
    gort::detail::request_preemption();
    ch.close();
    EXPECT_TRUE(bystander_ran.load()) << "close() held the worker through all " << kWaiters << " waiters";
    finished.wait();
    EXPECT_EQ(got_nullopt.load(), kWaiters);
  });
}

TEST_P(ChanClose, ASenderNotYetReachedByCloseIsNotReceivedFrom) {
  run([] {
    gort::Chan<int> ch;  // unbuffered: every sender parks
    std::atomic<int> threw{0};
    gort::WaitGroup parked, finished;
    parked.add(kWaiters);
    finished.add(kWaiters + 1);
    for (int i = 0; i < kWaiters; ++i)
      go_spawn([&] {
        parked.done();
        try {
          ch.send(7);
        } catch (const gort::ChanClosed&) {
          threw++;
        }
        finished.done();
      });
    parked.wait();
    // Runs at close()'s first preemption point, while most senders are
    // still queued: the channel is closed to it all the same.
    std::optional<int> received = 42;
    std::atomic<bool> receiver_ran{false};
    go_spawn([&] {
      // Not before the close has begun, whenever this fiber gets to run
      // (the monitor may have preempted the spawner already).
      while (!ch.closed()) gort::yield();
      received = ch.recv();
      receiver_ran = true;
      finished.done();
    });
    gort::detail::request_preemption();
    ch.close();
    EXPECT_TRUE(receiver_ran.load());
    finished.wait();
    EXPECT_FALSE(received.has_value()) << "received " << *received << " from a sender of a closed channel";
    EXPECT_EQ(threw.load(), kWaiters);
  });
}

// A party that sees the channel closed while close() is between two
// batches may destroy it: the destructor waits for close() to be done.
TEST_P(ChanClose, AnOwnerThatSeesTheChannelClosedMayDestroyIt) {
  run([] {
    auto ch = std::make_unique<gort::Chan<int>>();
    gort::Chan<int>* chan = ch.get();
    std::atomic<int> got_nullopt{0};
    gort::WaitGroup parked, finished;
    parked.add(kWaiters);
    finished.add(kWaiters + 1);
    for (int i = 0; i < kWaiters; ++i)
      go_spawn([&, chan] {
        parked.done();
        if (!chan->recv()) got_nullopt++;
        finished.done();
      });
    parked.wait();
    std::atomic<bool> close_returned{false};
    go_spawn([&, chan] {
      gort::detail::request_preemption();
      chan->close();
      close_returned = true;
      finished.done();
    });
    while (!ch->closed()) gort::yield();
    ch.reset();  // fatal ("destroyed while fibers wait on it") if it did not wait
    EXPECT_TRUE(close_returned.load());
    finished.wait();
    EXPECT_EQ(got_nullopt.load(), kWaiters);
  });
}

// close() wakes each full batch of waiters between two of its lock holds:
// a receiver woken then may destroy the channel while close() still has
// waiters to take off. The destructor waits for close() to be done.
TEST_P(ChanClose, AWaiterWokenByCloseMayDestroyTheChannel) {
  run([] {
    auto ch = std::make_unique<gort::Chan<int>>();
    gort::Chan<int>* chan = ch.get();
    std::atomic<int> got_nullopt{0};
    std::atomic<bool> close_returned{false}, destroyer_chosen{false};
    bool woken_during_close = false;
    gort::WaitGroup parked, finished;
    parked.add(kWaiters);
    finished.add(kWaiters + 1);
    for (int i = 0; i < kWaiters; ++i)
      go_spawn([&, chan] {
        parked.done();
        if (!chan->recv()) got_nullopt++;
        if (!destroyer_chosen.exchange(true)) {  // the first to run again: of close()'s first batch
          woken_during_close = !close_returned.load();
          ch.reset();  // a use after free under ASan if it did not wait
        }
        finished.done();
      });
    parked.wait();
    go_spawn([&, chan] {
      gort::detail::request_preemption();
      chan->close();
      close_returned = true;
      finished.done();
    });
    finished.wait();
    EXPECT_TRUE(woken_during_close) << "the first batch was not woken before close() returned";
    EXPECT_EQ(ch, nullptr);
    EXPECT_EQ(got_nullopt.load(), kWaiters);
  });
}

TEST_P(Chan, TrySendTryRecv) {
  run([] {
    gort::Chan<std::unique_ptr<int>> unbuffered;
    auto p = std::make_unique<int>(5);
    EXPECT_FALSE(unbuffered.try_send(std::move(p)));  // nobody receiving
    ASSERT_NE(p, nullptr);                            // not consumed on failure
    EXPECT_EQ(unbuffered.try_recv(), std::nullopt);

    gort::Chan<int> buffered(1);
    EXPECT_TRUE(buffered.try_send(1));
    EXPECT_FALSE(buffered.try_send(2));
    EXPECT_EQ(buffered.try_recv(), 1);
    EXPECT_EQ(buffered.try_recv(), std::nullopt);

    // try_send hands off to a parked receiver.
    gort::WaitGroup wg;
    wg.add(1);
    std::optional<std::unique_ptr<int>> got;
    go_spawn([&] {
      got = unbuffered.recv();
      wg.done();
    });
    while (!unbuffered.try_send(std::move(p))) gort::sleep_for(1ms);
    wg.wait();
    ASSERT_TRUE(got && *got);
    EXPECT_EQ(**got, 5);
  });
}

TEST_P(Chan, MoveOnlyValues) {
  run([] {
    for (std::size_t cap : {0, 3}) {
      auto ch = gort::make_chan<std::unique_ptr<std::string>>(cap);
      constexpr int kN = 2000 / kScale;
      go_spawn([ch] {
        for (int i = 0; i < kN; ++i) ch->send(std::make_unique<std::string>(std::to_string(i)));
        ch->close();
      });
      int i = 0;
      for (auto& s : *ch) EXPECT_EQ(*s, std::to_string(i++));
      EXPECT_EQ(i, kN);
    }
  });
}

TEST_P(Chan, BufferedValuesDestroyedWithChannel) {
  run([] {
    auto counter = std::make_shared<int>(0);
    {
      gort::Chan<std::shared_ptr<int>> ch(4);
      ch.send(counter);
      ch.send(counter);
      EXPECT_EQ(counter.use_count(), 3);
    }
    EXPECT_EQ(counter.use_count(), 1);
  });
}

TEST_P(Chan, PlainThreadsAndFibers) {
  run([] {
    for (std::size_t cap : {0, 8}) {
      gort::Chan<int> to_thread(cap), from_thread(cap);
      constexpr int kN = 3000 / kScale;
      std::thread t([&] {  // echoes every value back, +1
        for (int v : to_thread) from_thread.send(v + 1);
        from_thread.close();
      });
      go_spawn([&] {
        for (int i = 0; i < kN; ++i) to_thread.send(i);
        to_thread.close();
      });
      int64_t sum = 0, n = 0;
      for (int v : from_thread) {
        sum += v;
        ++n;
      }
      t.join();
      EXPECT_EQ(n, kN);
      EXPECT_EQ(sum, int64_t(kN) * (kN + 1) / 2);
    }
  });
}

TEST(ChanNoRuntime, WorksBetweenPlainThreads) {
  gort::Chan<int> ch;
  std::thread t([&] {
    for (int i = 1; i <= 1000; ++i) ch.send(i);
    ch.close();
  });
  int64_t sum = 0;
  for (int v : ch) sum += v;
  t.join();
  EXPECT_EQ(sum, 1000 * 1001 / 2);
}
