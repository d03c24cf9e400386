// select and after: readiness, default, fairness, close, timeouts, a stress
// over shared channels, and selects from plain threads.
#include <gort/select.h>

#include <array>
#include <atomic>
#include <memory>
#include <thread>
#include <vector>

#include "support.h"

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;
using gort_test::kScale;
using gort_test::WorkersTest;

class Select : public WorkersTest {};
GORT_INSTANTIATE(Select);

TEST_P(Select, DefaultWhenNothingReady) {
  run([] {
    gort::Chan<int> a, b(1);
    bool ran_default = false;
    int chosen = gort::select(gort::on_recv(a), gort::on_default([&] { ran_default = true; }), gort::on_recv(b));
    EXPECT_EQ(chosen, 1);
    EXPECT_TRUE(ran_default);
    EXPECT_EQ(gort::select(gort::on_default()), 0);
  });
}

TEST_P(Select, ReadyReceiveAndSend) {
  run([] {
    gort::Chan<int> in(1);
    gort::Chan<std::string> out(1);
    in.send(42);
    int got = 0;
    EXPECT_EQ(gort::select(gort::on_recv(in, [&](std::optional<int> v) { got = *v; }), gort::on_default()), 0);
    EXPECT_EQ(got, 42);
    bool sent = false;
    EXPECT_EQ(gort::select(gort::on_default(), gort::on_send(out, "hi", [&] { sent = true; })), 1);
    EXPECT_TRUE(sent);
    EXPECT_EQ(out.recv(), "hi");
  });
}

TEST_P(Select, BlocksUntilOneCaseIsReady) {
  run([] {
    auto ints = gort::make_chan<int>();
    auto strings = gort::make_chan<std::string>();
    go_spawn([strings] {
      gort::sleep_for(20ms);
      strings->send("late");
    });
    std::string got;
    int chosen = gort::select(gort::on_recv(ints, [](std::optional<int>) { ADD_FAILURE(); }),
                              gort::on_recv(strings, [&](std::optional<std::string> s) { got = *s; }));
    EXPECT_EQ(chosen, 1);
    EXPECT_EQ(got, "late");
  });
}

TEST_P(Select, ParkedSendCaseMeetsReceiver) {
  run([] {
    gort::Chan<std::unique_ptr<int>> ch;
    gort::Chan<int> never;
    go_spawn([&] {
      gort::sleep_for(10ms);
      auto v = ch.recv();
      EXPECT_TRUE(v && *v && **v == 9);
    });
    EXPECT_EQ(gort::select(gort::on_recv(never), gort::on_send(ch, std::make_unique<int>(9))), 1);
  });
}

TEST_P(Select, ClosedChannelIsReadyForReceive) {
  run([] {
    gort::Chan<int> a, b;
    b.close();
    bool closed = false;
    EXPECT_EQ(gort::select(gort::on_recv(a), gort::on_recv(b, [&](std::optional<int> v) { closed = !v; })), 1);
    EXPECT_TRUE(closed);
  });
}

TEST_P(Select, SendCaseOnClosedChannelThrows) {
  run([] {
    gort::Chan<int> a, b;
    b.close();
    EXPECT_THROW(gort::select(gort::on_recv(a), gort::on_send(b, 1)), gort::ChanClosed);
    // Closed while the select is parked.
    go_spawn([&] {
      gort::sleep_for(10ms);
      a.close();
    });
    gort::Chan<int> c;
    EXPECT_THROW(gort::select(gort::on_send(a, 1), gort::on_recv(c)), gort::ChanClosed);
  });
}

TEST_P(Select, CloseWakesParkedSelectOnce) {
  run([] {
    gort::Chan<int> a, b;
    go_spawn([&] {
      gort::sleep_for(10ms);
      a.close();
      b.close();
    });
    int calls = 0;
    gort::select(gort::on_recv(a, [&] { ++calls; }), gort::on_recv(b, [&] { ++calls; }));
    EXPECT_EQ(calls, 1);
  });
}

TEST_P(Select, SameChannelTwice) {
  run([] {
    gort::Chan<int> ch;
    std::array<int, 2> hits{};
    constexpr int kN = 2000 / kScale;
    go_spawn([&] {
      for (int i = 0; i < kN; ++i) ch.send(i);
    });
    for (int i = 0; i < kN; ++i) hits[std::size_t(gort::select(gort::on_recv(ch), gort::on_recv(ch)))]++;
    EXPECT_EQ(hits[0] + hits[1], kN);
    // Send and receive on one channel in one select, against a partner doing the same.
    gort::Chan<int> both;
    std::atomic<int> done{0};
    go_spawn([&] {
      gort::select(gort::on_send(both, 1), gort::on_recv(both));
      done++;
    });
    gort::select(gort::on_send(both, 2), gort::on_recv(both));
    while (done.load() == 0) gort::sleep_for(1ms);
  });
}

TEST_P(Select, FairAmongReadyCases) {
  run([] {
    constexpr int kSelects = 10000;
    gort::Chan<int> a(1), b(1);
    a.send(0);
    b.send(0);
    int hits_a = 0;
    for (int i = 0; i < kSelects; ++i) {
      // Both always ready: refill whichever was taken.
      int chosen = gort::select(gort::on_recv(a), gort::on_recv(b));
      if (chosen == 0) {
        ++hits_a;
        a.send(0);
      } else {
        b.send(0);
      }
    }
    // Binomial(10000, 0.5): sd 50; 40-60% is 20 sd.
    EXPECT_GT(hits_a, kSelects * 40 / 100);
    EXPECT_LT(hits_a, kSelects * 60 / 100);
  });
}

TEST_P(Select, StressCountsConserved) {
  run([] {
    // Fibers select-send into and select-receive from shared channels of two
    // types; every item is counted once at each end.
    constexpr int kSenders = 16, kReceivers = 16, kPer = 2000 / kScale;
    auto c0 = gort::make_chan<int64_t>(0), c1 = gort::make_chan<int64_t>(4);
    auto c2 = gort::make_chan<int>(1);
    std::atomic<int64_t> sent_sum{0}, recv_sum{0}, recv_count{0};
    gort::WaitGroup senders, receivers;
    senders.add(kSenders);
    receivers.add(kReceivers);
    for (int s = 0; s < kSenders; ++s)
      go_spawn([&, s] {
        for (int i = 1; i <= kPer; ++i) {
          int64_t v = int64_t(s) * kPer + i;
          gort::select(gort::on_send(c0, v), gort::on_send(c1, v), gort::on_send(c2, int(v)));
          sent_sum += v;
        }
        senders.done();
      });
    for (int r = 0; r < kReceivers; ++r)
      go_spawn([&] {
        int open = 3;
        std::array<bool, 3> closed{};
        while (open > 0) {
          auto take = [&](int idx) {
            return [&, idx](auto v) {
              if (v) {
                recv_sum += int64_t(*v);
                recv_count++;
              } else if (!closed[std::size_t(idx)]) {
                closed[std::size_t(idx)] = true;
                --open;
              }
            };
          };
          // A closed channel stays ready; once seen closed, stop selecting on
          // it by substituting a channel nobody sends on.
          gort::select(gort::on_recv(c0, take(0)), gort::on_recv(c1, take(1)), gort::on_recv(c2, take(2)),
                       gort::on_default([&] { gort::yield(); }));
          if (open < 3 && open > 0) {
            // Drain the remaining open ones with plain receives.
            if (!closed[0])
              for (auto v = c0->recv(); v; v = c0->recv()) recv_sum += *v, recv_count++;
            if (!closed[1])
              for (auto v = c1->recv(); v; v = c1->recv()) recv_sum += *v, recv_count++;
            if (!closed[2])
              for (auto v = c2->recv(); v; v = c2->recv()) recv_sum += *v, recv_count++;
            open = 0;
          }
        }
        receivers.done();
      });
    senders.wait();
    c0->close();
    c1->close();
    c2->close();
    receivers.wait();
    EXPECT_EQ(recv_count.load(), int64_t(kSenders) * kPer);
    EXPECT_EQ(recv_sum.load(), sent_sum.load());
  });
}

TEST_P(Select, BlockingStressCountsConserved) {
  run([] {
    // Parking selects on both sides of unbuffered channels: every hand-off
    // is select-to-select, so each wake-up must claim exactly one case.
    constexpr int kPairs = 8, kPer = 1000 / kScale;
    std::vector<std::shared_ptr<gort::Chan<int>>> chans;
    for (int i = 0; i < 4; ++i) chans.push_back(gort::make_chan<int>());
    std::atomic<int64_t> got{0}, sum{0};
    gort::WaitGroup wg;
    wg.add(2 * kPairs);
    for (int p = 0; p < kPairs; ++p) {
      go_spawn([&] {
        for (int i = 1; i <= kPer; ++i)
          gort::select(gort::on_send(chans[0], i), gort::on_send(chans[1], i), gort::on_send(chans[2], i),
                       gort::on_send(chans[3], i));
        wg.done();
      });
      go_spawn([&] {
        auto h = [&](std::optional<int> v) {
          got++;
          sum += *v;
        };
        for (int i = 0; i < kPer; ++i)
          gort::select(gort::on_recv(chans[3], h), gort::on_recv(chans[2], h), gort::on_recv(chans[1], h),
                       gort::on_recv(chans[0], h));
        wg.done();
      });
    }
    wg.wait();
    EXPECT_EQ(got.load(), int64_t(kPairs) * kPer);
    EXPECT_EQ(sum.load(), int64_t(kPairs) * kPer * (kPer + 1) / 2);
  });
}

TEST_P(Select, AfterFiresWithinBound) {
  run([] {
    auto start = Clock::now();
    auto t = gort::after(50ms)->recv();
    ASSERT_TRUE(t.has_value());
    EXPECT_GE(*t - start, 50ms);
    EXPECT_GE(Clock::now() - start, 50ms);
    EXPECT_LT(Clock::now() - start, 50ms + 2s);
  });
}

TEST_P(Select, TimeoutCase) {
  run([] {
    gort::Chan<int> never;
    auto start = Clock::now();
    bool timed_out = false;
    int chosen = gort::select(gort::on_recv(never), gort::on_recv(gort::after(40ms), [&] { timed_out = true; }));
    EXPECT_EQ(chosen, 1);
    EXPECT_TRUE(timed_out);
    EXPECT_GE(Clock::now() - start, 40ms);
    EXPECT_LT(Clock::now() - start, 40ms + 2s);
  });
}

TEST_P(Select, ManyConcurrentTimeoutsAndLostTimers) {
  run([] {
    // Half the fibers time out; the other half get a value at once and leave
    // their 10 s timers pending when the runtime stops (freed then: ASan's
    // leak check would see them otherwise).
    constexpr int kEach = 50;
    gort::Chan<int> values(kEach), never;
    for (int i = 0; i < kEach; ++i) values.send(i);
    std::atomic<int> timeouts{0}, received{0};
    gort::WaitGroup wg;
    wg.add(2 * kEach);
    auto start = Clock::now();
    for (int i = 0; i < kEach; ++i) {
      go_spawn([&] {
        gort::select(gort::on_recv(never), gort::on_recv(gort::after(30ms), [&] { timeouts++; }));
        wg.done();
      });
      go_spawn([&] {
        gort::select(gort::on_recv(values, [&] { received++; }), gort::on_recv(gort::after(10s)));
        wg.done();
      });
    }
    wg.wait();
    EXPECT_EQ(timeouts, kEach);
    EXPECT_EQ(received, kEach);
    EXPECT_LT(Clock::now() - start, 30ms + 2s);
  });
}

TEST_P(Select, FromPlainThread) {
  run([] {
    gort::Chan<int> a, b;
    constexpr int kN = 2000 / kScale;
    std::atomic<int64_t> sum{0};
    std::thread t([&] {
      for (int i = 0; i < kN; ++i)
        gort::select(gort::on_recv(a, [&](std::optional<int> v) { sum += *v; }),
                     gort::on_recv(b, [&](std::optional<int> v) { sum += *v; }));
      // A timeout from a thread, on worker 0's heap.
      EXPECT_EQ(gort::select(gort::on_recv(a), gort::on_recv(gort::after(20ms))), 1);
      a.close();
    });
    for (int i = 1; i <= kN; ++i) (i % 2 ? a : b).send(i);
    // Park (not join) until the thread is done: its timer needs a worker.
    EXPECT_EQ(a.recv(), std::nullopt);
    t.join();
    EXPECT_EQ(sum.load(), int64_t(kN) * (kN + 1) / 2);
  });
}

TEST(SelectNoRuntime, AfterThrowsAndSelectWorks) {
  EXPECT_THROW(gort::after(1ms), std::logic_error);
  gort::Chan<int> a(1);
  a.send(3);
  int got = 0;
  EXPECT_EQ(gort::select(gort::on_recv(a, [&](std::optional<int> v) { got = *v; })), 0);
  EXPECT_EQ(got, 3);
}
