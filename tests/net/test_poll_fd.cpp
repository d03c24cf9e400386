// gort::net::PollFd: waiting from fibers on descriptors gort does not own
// (pipes and socket pairs standing in for a C library's socket), across
// worker counts.
#include <fcntl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <memory>
#include <vector>

#include "export_test.h"
#include "net_support.h"

using namespace std::chrono_literals;
using namespace gort::net;

namespace {

class PollFdTest : public gort_test::WorkersTest {};

// Both ends nonblocking; closed by the destructor (the owner's job).
struct Pipe {
  int r = -1, w = -1;
  Pipe() {
    int fds[2];
    EXPECT_EQ(pipe2(fds, O_NONBLOCK | O_CLOEXEC), 0);
    r = fds[0];
    w = fds[1];
  }
  ~Pipe() {
    ::close(r);
    ::close(w);
  }
};

bool is_open_fd(int fd) { return fcntl(fd, F_GETFD) != -1; }

TEST_P(PollFdTest, ReadableWakesAParkedFiberAndIsLevelTriggered) {
  run([] {
    Pipe p;
    auto watch = PollFd::open(p.r);
    ASSERT_TRUE(watch) << watch.error().message();
    gort::Chan<int> woke(1);
    go_spawn([&] {
      auto r = watch->wait_readable();
      woke.send(r ? 1 : 0);
    });
    gort::sleep_for(20ms);
    EXPECT_FALSE(woke.try_recv().has_value()) << "returned before anything was written";
    ASSERT_EQ(::write(p.w, "abc", 3), 3);
    EXPECT_EQ(woke.recv(), 1);
    // Nothing was read: still readable, every time (level, not edge).
    for (int i = 0; i < 3; ++i) EXPECT_TRUE(watch->wait_readable());
    char buf[8];
    ASSERT_EQ(::read(p.r, buf, 1), 1);  // the owner reads a part only
    EXPECT_TRUE(watch->wait_readable());
    ASSERT_EQ(::read(p.r, buf, sizeof buf), 2);
    watch->set_read_deadline(gort::net::Clock::now() + 30ms);
    EXPECT_EQ(watch->wait_readable().error(), Errc::kTimeout);
    ASSERT_TRUE(watch->close());
    EXPECT_TRUE(is_open_fd(p.r)) << "PollFd closed a descriptor it does not own";
  });
}

TEST_P(PollFdTest, WritableWhenThePeerDrains) {
  run([] {
    int sv[2];
    ASSERT_EQ(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv), 0);
    char chunk[4096] = {};
    while (::write(sv[0], chunk, sizeof chunk) > 0) {
    }
    ASSERT_EQ(errno, EAGAIN);
    auto watch = PollFd::open(sv[0]);
    ASSERT_TRUE(watch);
    gort::Chan<bool> done(1);
    go_spawn([&] { done.send(bool(watch->wait_writable())); });
    gort::sleep_for(20ms);
    EXPECT_FALSE(done.try_recv().has_value()) << "writable while the buffer was full";
    while (::read(sv[1], chunk, sizeof chunk) > 0) {
    }
    EXPECT_TRUE(done.recv());
    EXPECT_TRUE(watch->close());
    ::close(sv[0]);
    ::close(sv[1]);
  });
}

TEST_P(PollFdTest, CloseWakesWaitersAndDeregistersBeforeReturning) {
  run([] {
    Pipe p;
    auto watch = PollFd::open(p.r);
    ASSERT_TRUE(watch);
    gort::WaitGroup wg;
    std::atomic<int> closed_errors{0};
    wg.add(1);
    go_spawn([&] {
      if (auto r = watch->wait_readable(); !r && r.error() == Errc::kClosed) ++closed_errors;
      wg.done();
    });
    gort::sleep_for(10ms);
    ASSERT_TRUE(watch->close());
    wg.wait();
    EXPECT_EQ(closed_errors.load(), 1);
    EXPECT_EQ(watch->close().error(), Errc::kClosed);
    EXPECT_EQ(watch->wait_readable().error(), Errc::kClosed);
    // Deregistered: the same descriptor can be watched again at once.
    auto again = PollFd::open(p.r);
    EXPECT_TRUE(again) << again.error().message();
  });
}

TEST_P(PollFdTest, ContextCancelUnblocksAWait) {
  run([] {
    Pipe p;
    auto watch = PollFd::open(p.r);
    ASSERT_TRUE(watch);
    auto [ctx, cancel] = gort::with_cancel(gort::background());
    gort::after_func(20ms, [cancel = cancel] { cancel(); });
    EXPECT_EQ(watch->wait_readable(ctx).error(), Errc::kCanceled);
    EXPECT_EQ(watch->wait_readable(ctx).error(), Errc::kCanceled) << "a done context refuses at once";
    // The user's deadline is untouched: an ordinary wait still waits.
    ASSERT_EQ(::write(p.w, "x", 1), 1);
    EXPECT_TRUE(watch->wait_readable());
  });
}

TEST_P(PollFdTest, BadUseIsAClearError) {
  run([] {
    auto bad = PollFd::open(-1);
    ASSERT_FALSE(bad);
    EXPECT_NE(bad.error().message().find("poll fd -1"), std::string::npos) << bad.error().message();
    Pipe p;
    auto first = PollFd::open(p.r);
    ASSERT_TRUE(first);
    auto twice = PollFd::open(p.r);  // one registration per descriptor
    ASSERT_FALSE(twice);
    EXPECT_EQ(twice.error().sys_errno(), EEXIST) << twice.error().message();
    // A descriptor epoll will not watch (a regular file) is the kernel's
    // refusal, not "outside a fiber".
    FILE* file = std::tmpfile();
    ASSERT_NE(file, nullptr);
    auto regular = PollFd::open(fileno(file));
    std::fclose(file);
    ASSERT_FALSE(regular);
    EXPECT_NE(regular.error().code(), Errc::kNotInFiber) << regular.error().message();
    EXPECT_EQ(regular.error().sys_errno(), EPERM) << regular.error().message();
    PollFd empty;
    EXPECT_EQ(empty.wait_readable().error(), Errc::kClosed);
    EXPECT_EQ(empty.fd(), -1);
  });
}

TEST(PollFdOutsideARuntime, OpenIsNotInFiber) {
  Pipe p;
  auto watch = PollFd::open(p.r);
  ASSERT_FALSE(watch);
  EXPECT_EQ(watch.error(), Errc::kNotInFiber);
}

GORT_INSTANTIATE(PollFdTest);

// Poll descriptors' memory after a peak (netpoll.h, "Where PollDescs
// live"): the pages of descriptors no one used for a scavenge period go
// back, and come back rebuilt, every readiness and deadline working.
class ScavengedPollDescs : public PollFdTest {
 protected:
  void SetUp() override { setenv("GORT_SCAVENGE_MS", "10", 1); }
  void TearDown() override { unsetenv("GORT_SCAVENGE_MS"); }
};

gort::detail::NetPoll* this_netpoll() { return gort::detail::netpoll_of(gort::detail::current_worker()->sched); }

std::size_t descs_per_page() { return gort::detail::page_size() / gort::detail::kPdStride; }

// n pipes, each read end watched by a PollFd (opened: each fails the test
// if it cannot open).
struct WatchedPipes {
  std::vector<std::unique_ptr<Pipe>> pipes;
  std::vector<PollFd> watches;
  explicit WatchedPipes(std::size_t n) {
    for (std::size_t i = 0; i < n; ++i) {
      pipes.push_back(std::make_unique<Pipe>());
      auto w = PollFd::open(pipes.back()->r);
      EXPECT_TRUE(w) << w.error().message();
      watches.push_back(w ? std::move(*w) : PollFd());
    }
  }
};

// Sleeps until done() holds or 20 s pass; returns done().
template <class Done>
bool wait_until(Done done) {
  auto deadline = std::chrono::steady_clock::now() + 20s;
  while (!done() && std::chrono::steady_clock::now() < deadline) gort::sleep_for(5ms);
  return done();
}

TEST_P(ScavengedPollDescs, PagesGoBackAfterAPeakAndComeBackWorking) {
  run([] {
    constexpr std::size_t kPipes = 1000;
    std::size_t carved = 0;
    {
      WatchedPipes peak(kPipes);
      carved = this_netpoll()->pages_carved();
      EXPECT_GE(carved, kPipes / descs_per_page());
    }
    // Every page but the one a descriptor of the runtime may still hold.
    wait_until([&] { return this_netpoll()->pages_cold() + 1 >= carved; });
    std::size_t cold = this_netpoll()->pages_cold();
    EXPECT_GE(cold + 1, carved) << "descriptor pages not given back";

    WatchedPipes again(kPipes);
    auto& pipes = again.pipes;
    auto& watches = again.watches;
    EXPECT_LT(this_netpoll()->pages_cold(), cold) << "rebuilt pages were not reused";
    EXPECT_EQ(this_netpoll()->pages_carved(), carved) << "new pages carved while given-back ones were free";
    for (std::size_t i = 0; i < kPipes; i += 7) {
      if (i % 2 == 0) {
        ASSERT_EQ(::write(pipes[i]->w, "x", 1), 1);
        EXPECT_TRUE(watches[i].wait_readable()) << i;
      } else {
        watches[i].set_read_deadline(gort::net::Clock::now() + 1ms);
        EXPECT_EQ(watches[i].wait_readable().error(), Errc::kTimeout) << i;
      }
    }
  });
}

// Descriptors opened, readied, timed out and closed in bursts while the
// scavenger gives their pages back between bursts: events fetched before a
// close and deadline timers popped before it reach pages that may have
// been given back or rebuilt (the sanitizers watch).
TEST_P(ScavengedPollDescs, ChurnWhilePagesGoBack) {
  run([] {
    constexpr int kRounds = 20, kPipes = 128;
    std::size_t most_cold = 0;
    for (int round = 0; round < kRounds; ++round) {
      WatchedPipes burst(kPipes);
      auto& pipes = burst.pipes;
      auto& watches = burst.watches;
      for (int i = 0; i < kPipes; ++i)
        watches[std::size_t(i)].set_read_deadline(gort::net::Clock::now() + std::chrono::microseconds(500 + 20 * i));
      gort::WaitGroup waiters;
      std::atomic<int> ready{0}, timed_out{0};
      for (int i = 0; i < kPipes; i += 2) {
        waiters.add(1);
        go_spawn([&, i] {
          auto r = watches[std::size_t(i)].wait_readable();
          (r ? ready : timed_out).fetch_add(1);
          if (!r) {
            EXPECT_EQ(r.error(), Errc::kTimeout);
          }
          waiters.done();
        });
      }
      gort::sleep_for(1ms);
      for (int i = 0; i < kPipes; ++i) ASSERT_EQ(::write(pipes[std::size_t(i)]->w, "x", 1), 1);
      waiters.wait();
      EXPECT_EQ(ready.load() + timed_out.load(), kPipes / 2);
      watches.clear();  // closed with events and timers possibly in flight
      pipes.clear();
      gort::sleep_for(25ms);  // often long enough for the pages to go (two scavenges)
      most_cold = std::max(most_cold, this_netpoll()->pages_cold());
    }
    // Whatever the scavenger's timing did between the bursts, with nothing
    // open the pages go back within a bounded time.
    EXPECT_TRUE(most_cold > 0 || wait_until([] { return this_netpoll()->pages_cold() > 0; }))
        << "no page was given back";
  });
}

// set_deadline holds a reference but no direction lock, and close()
// deregisters a borrowed descriptor while references remain: the two
// meet under the registration's lock (net_fd.cpp), so a deadline set while
// the watch closes never reaches a descriptor already given back.
TEST_P(ScavengedPollDescs, SetDeadlineRacingCloseIsSafe) {
  run([] {
    for (int round = 0; round < 200; ++round) {
      Pipe p;
      auto w = PollFd::open(p.r);
      ASSERT_TRUE(w) << w.error().message();
      PollFd watch = std::move(*w);
      std::atomic<bool> stop{false};
      gort::WaitGroup setter;
      setter.add(1);
      go_spawn([&] {
        while (!stop.load()) {
          watch.set_read_deadline(gort::net::Clock::now() + 1ms);
          gort::yield();
        }
        setter.done();
      });
      gort::yield();
      EXPECT_TRUE(watch.close());
      EXPECT_EQ(watch.wait_readable().error(), Errc::kClosed);
      stop.store(true);
      setter.wait();
    }
  });
}
GORT_INSTANTIATE(ScavengedPollDescs);

}  // namespace
