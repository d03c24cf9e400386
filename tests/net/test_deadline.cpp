// Deadlines (Go semantics): absolute, apply to calls in progress and later
// ones, and fire within a stated bound: at or after the deadline and less
// than 2 s after it (generous: the machine is shared and may be loaded).
#include "net_support.h"

using namespace std::chrono_literals;
using namespace gort::net;

namespace {
constexpr double kLateBound = 2.0;  // seconds after the deadline

struct Pair {
  Listener ln;
  Conn client, server;
};

Pair connected_pair() {
  Pair p;
  p.ln = std::move(*listen_tcp("127.0.0.1:0"));
  p.client = std::move(*dial_tcp(p.ln.local_address()->to_string(), 5s));
  p.server = std::move(*p.ln.accept());
  return p;
}
}  // namespace

class Deadlines : public gort_test::WorkersTest {};

TEST_P(Deadlines, ReadDeadlineFires) {
  run([] {
    Pair p = connected_pair();
    auto start = gort::Clock::now();
    p.client.set_read_deadline(start + 200ms);
    char buf[8];
    auto n = p.client.read(buf, sizeof buf);
    double t = gort_test::elapsed_s(start);
    ASSERT_FALSE(n);
    EXPECT_EQ(n.error(), Errc::kTimeout);
    EXPECT_GE(t, 0.2);
    EXPECT_LT(t, 0.2 + kLateBound);
    // Still expired for later calls, until cleared; no data was lost.
    EXPECT_EQ(p.client.read(buf, sizeof buf).error(), Errc::kTimeout);
    ASSERT_TRUE(p.server.write_all("abc", 3));
    p.client.set_read_deadline(kNoDeadline);
    auto m = p.client.read(buf, sizeof buf);
    ASSERT_TRUE(m);
    EXPECT_EQ(std::string(buf, *m), "abc");
  });
}

TEST_P(Deadlines, WriteDeadlineFires) {
  run([] {
    Pair p = connected_pair();  // the server side never reads
    auto start = gort::Clock::now();
    p.client.set_write_deadline(start + 200ms);
    std::string big(1 << 20, 'x');
    Result<void> r;
    for (int i = 0; i < 256 && r; ++i) r = p.client.write_all(big);
    double t = gort_test::elapsed_s(start);
    ASSERT_FALSE(r);
    EXPECT_EQ(r.error(), Errc::kTimeout);
    EXPECT_GE(t, 0.2);
    EXPECT_LT(t, 0.2 + kLateBound);
  });
}

TEST_P(Deadlines, PastDeadlineFailsAtOnceWithoutConsuming) {
  run([] {
    Pair p = connected_pair();
    ASSERT_TRUE(p.server.write_all("data", 4));
    gort::sleep_for(20ms);
    p.client.set_deadline(gort::Clock::now() - 1s);
    char buf[8];
    EXPECT_EQ(p.client.read(buf, sizeof buf).error(), Errc::kTimeout);
    EXPECT_EQ(p.client.write("x", 1).error(), Errc::kTimeout);
    p.client.set_deadline(kNoDeadline);
    auto n = p.client.read(buf, sizeof buf);
    ASSERT_TRUE(n);
    EXPECT_EQ(std::string(buf, *n), "data");
  });
}

TEST_P(Deadlines, AppliesToACallInProgressAndCanBeMoved) {
  run([] {
    Pair p = connected_pair();
    gort::WaitGroup wg;
    wg.add(1);
    auto start = gort::Clock::now();
    double took = 0;
    Result<std::size_t> n = std::size_t(0);
    go_spawn([&] {
      char buf[8];
      n = p.client.read(buf, sizeof buf);  // no deadline yet: parks
      took = gort_test::elapsed_s(start);
      wg.done();
    });
    gort::sleep_for(50ms);
    p.client.set_read_deadline(start + 150ms);  // set while it waits
    gort::sleep_for(50ms);
    p.client.set_read_deadline(start + 400ms);  // moved later before it fired
    wg.wait();
    ASSERT_FALSE(n);
    EXPECT_EQ(n.error(), Errc::kTimeout);
    EXPECT_GE(took, 0.4);
    EXPECT_LT(took, 0.4 + kLateBound);
  });
}

TEST_P(Deadlines, DataBeforeTheDeadlineWins) {
  run([] {
    Pair p = connected_pair();
    p.client.set_read_deadline(gort::Clock::now() + 2s);
    gort::WaitGroup wg;
    wg.add(1);
    go_spawn([&] {
      gort::sleep_for(50ms);
      (void)p.server.write_all("hi", 2);
      wg.done();
    });
    char buf[8];
    auto n = p.client.read(buf, sizeof buf);
    wg.wait();  // the writer is still using p.server when our read returns
    ASSERT_TRUE(n) << n.error().message();
    EXPECT_EQ(std::string(buf, *n), "hi");
    p.client.set_read_deadline(kNoDeadline);
  });
}

TEST_P(Deadlines, RacingDeadlinesAndReadinessWakeExactlyOnce) {
  // Many short reads whose deadline and data arrive at about the same time:
  // each read must end exactly once, with data or a timeout (a doubled
  // wake-up is a fatal error in the runtime; a lost one hangs).
  run([] {
    Pair p = connected_pair();
    const int rounds = 300 / gort_test::kScale;
    int timeouts = 0, reads = 0;
    gort::WaitGroup writers;
    for (int i = 0; i < rounds; ++i) {
      p.client.set_read_deadline(gort::Clock::now() + std::chrono::microseconds(200 + 37 * (i % 20)));
      writers.add(1);
      go_spawn([&] {
        EXPECT_TRUE(p.server.write_all("z", 1));
        writers.done();
      });
      char c;
      auto n = p.client.read(&c, 1);
      if (n) {
        ++reads;
      } else {
        ASSERT_EQ(n.error(), Errc::kTimeout);
        ++timeouts;
      }
    }
    p.client.set_read_deadline(kNoDeadline);
    writers.wait();
    // Bytes not read above are still there: drain exactly rounds - reads.
    ASSERT_TRUE(p.server.close());
    int rest = 0;
    char buf[512];
    for (;;) {
      auto n = p.client.read(buf, sizeof buf);
      if (!n) {
        EXPECT_EQ(n.error(), Errc::kEof);
        break;
      }
      rest += int(*n);
    }
    EXPECT_EQ(reads + rest, rounds);
    EXPECT_EQ(reads + timeouts, rounds);
  });
}

// A deadline moved later while armed stays where its timer was (the timer
// fires at the old time and is armed again for the new one): the read must
// time out at the last deadline, not the first, and a deadline pushed later
// before every request -- the common "now + timeout" pattern -- never fires
// while requests keep coming.
TEST_P(Deadlines, DeadlineMovedLaterFiresAtTheLastOne) {
  run([] {
    Pair p = connected_pair();
    char buf[8];
    // Pushed later before each of 40 exchanges, each 10 ms apart: the first
    // deadlines pass long before the last exchange; none may fire.  Each
    // deadline leaves the writer 300 ms for its 10 ms sleep (the machine is
    // shared and may be loaded), and the writer is waited for, so a failed
    // exchange does not leave it holding the pair.
    for (int i = 0; i < 40; ++i) {
      p.client.set_read_deadline(gort::Clock::now() + 300ms);
      gort::WaitGroup wrote;
      wrote.add(1);
      go_spawn([&p, &wrote] {
        gort::sleep_for(10ms);
        (void)p.server.write_all("x", 1);
        wrote.done();
      });
      auto n = p.client.read(buf, 1);
      wrote.wait();
      ASSERT_TRUE(n) << "exchange " << i << ": " << n.error().message();
    }
    // Now moved from 100 ms to 400 ms while a read waits.
    auto start = gort::Clock::now();
    p.client.set_read_deadline(start + 100ms);
    p.client.set_read_deadline(start + 400ms);
    auto n = p.client.read(buf, sizeof buf);
    double t = gort_test::elapsed_s(start);
    ASSERT_FALSE(n);
    EXPECT_EQ(n.error(), Errc::kTimeout);
    EXPECT_GE(t, 0.4);
    EXPECT_LT(t, 0.4 + kLateBound);
  });
}

TEST_P(Deadlines, AcceptAndDialTimeouts) {
  run([] {
    auto ln = listen_tcp("127.0.0.1:0");
    ASSERT_TRUE(ln);
    auto start = gort::Clock::now();
    ln->set_deadline(start + 100ms);
    auto c = ln->accept();
    ASSERT_FALSE(c);
    EXPECT_EQ(c.error(), Errc::kTimeout);
    EXPECT_GE(gort_test::elapsed_s(start), 0.1);
    EXPECT_LT(gort_test::elapsed_s(start), 0.1 + kLateBound);
  });
}

GORT_INSTANTIATE(Deadlines);
