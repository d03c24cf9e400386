// The fiber dump (<gort/debug.h>): each way of parking shows its wait
// reason, with the fiber's name and for how long; workers are listed.
// Each case parks a named fiber on one thing, polls the dump until that
// fiber's line appears (it may not have parked yet), then releases it.
#include <gort/detail/netpoll.h>

#include <sys/socket.h>

#include <regex>
#include <string>

#include "support.h"

using namespace std::chrono_literals;
using gort_test::WorkersTest;

namespace {

// The dump once `line` (a regex) matches one of its lines, or the last dump
// after 10 s (the caller's expectation then fails and prints it).
std::string dump_once_listed(const std::string& line) {
  std::regex re(line);
  std::string text;
  for (auto end = std::chrono::steady_clock::now() + 10s; std::chrono::steady_clock::now() < end;) {
    text = gort::debug::fibers_text();
    if (std::regex_search(text, re)) break;
    gort::sleep_for(1ms);
  }
  return text;
}

// Expects a line for the fiber `name` parked with `reason` (a regex).
void expect_parked(const char* name, const std::string& reason) {
  std::string line = std::string("fiber [0-9]+ \"") + name + "\" \\[" + reason + ", [0-9]+ (ms|s|min)\\]";
  std::string text = dump_once_listed(line);
  EXPECT_TRUE(std::regex_search(text, std::regex(line))) << "no line /" << line << "/ in:\n" << text;
}

}  // namespace

class Debug : public WorkersTest {};
GORT_INSTANTIATE(Debug);

TEST_P(Debug, ChannelReceiveAndSend) {
  run([] {
    gort::Chan<int> empty, full;
    gort::WaitGroup wg;
    wg.add(2);
    gort::spawn(gort::SpawnOptions{.name = "receiver"}, [&] {
      (void)empty.recv();
      wg.done();
    });
    gort::spawn(gort::SpawnOptions{.name = "sender"}, [&] {
      full.send(1);
      wg.done();
    });
    expect_parked("receiver", "chan receive");
    expect_parked("sender", "chan send");
    empty.send(1);
    (void)full.recv();
    wg.wait();
  });
}

TEST_P(Debug, MutexAndCondVar) {
  run([] {
    gort::Mutex mu;
    gort::CondVar cv;
    bool go = false;
    gort::WaitGroup wg;
    wg.add(2);
    mu.lock();
    gort::spawn(gort::SpawnOptions{.name = "locker"}, [&] {
      mu.lock();
      mu.unlock();
      wg.done();
    });
    expect_parked("locker", "mutex");
    mu.unlock();
    gort::spawn(gort::SpawnOptions{.name = "cv-waiter"}, [&] {
      std::unique_lock lk(mu);
      cv.wait(lk, [&] { return go; });
      wg.done();
    });
    expect_parked("cv-waiter", "condvar");
    {
      std::unique_lock lk(mu);
      go = true;
    }
    cv.notify_all();
    wg.wait();
  });
}

TEST_P(Debug, SleepWaitGroupAndSelect) {
  run([] {
    gort::WaitGroup blocker, wg;
    blocker.add(1);
    wg.add(3);
    gort::Chan<int> a, b;
    gort::spawn(gort::SpawnOptions{.name = "sleeper"}, [&] {
      gort::sleep_for(300ms);
      wg.done();
    });
    gort::spawn(gort::SpawnOptions{.name = "waiter"}, [&] {
      blocker.wait();
      wg.done();
    });
    gort::spawn(gort::SpawnOptions{.name = "selector"}, [&] {
      gort::select(gort::on_recv(a), gort::on_recv(b));
      wg.done();
    });
    expect_parked("sleeper", "sleep");
    expect_parked("waiter", "waitgroup");
    expect_parked("selector", "select");
    blocker.done();
    b.send(2);
    wg.wait();
  });
}

TEST_P(Debug, BlockingCall) {
  run([] {
    gort::Chan<int> release(1);
    gort::WaitGroup wg;
    wg.add(1);
    std::atomic<bool> stop{false};
    gort::spawn(gort::SpawnOptions{.name = "caller"}, [&] {
      gort::blocking([&] {
        while (!stop.load()) std::this_thread::sleep_for(1ms);
      });
      wg.done();
    });
    expect_parked("caller", "blocking call");
    stop.store(true);
    wg.wait();
  });
}

// A read on a descriptor shows the descriptor (through the runtime's poller
// directly: gort::net is a library above this one).
TEST_P(Debug, SocketReadShowsTheDescriptor) {
  run([] {
    int fds[2];
    ASSERT_EQ(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, fds), 0);
    int err = 0;
    gort::detail::PollDesc* pd = gort::detail::poll_open(fds[0], &err);
    ASSERT_NE(pd, nullptr) << err;
    gort::WaitGroup wg;
    wg.add(1);
    gort::spawn(gort::SpawnOptions{.name = "reader"}, [&] {
      using gort::detail::PollMode;
      EXPECT_EQ(gort::detail::poll_prepare(pd, PollMode::kRead), gort::detail::PollStatus::kReady);
      EXPECT_EQ(gort::detail::poll_wait(pd, PollMode::kRead, gort::detail::WaitReason::kIoRead),
                gort::detail::PollStatus::kReady);
      wg.done();
    });
    expect_parked("reader", "I/O read fd " + std::to_string(fds[0]));
    ASSERT_EQ(write(fds[1], "x", 1), 1);
    wg.wait();
    gort::detail::poll_evict(pd);
    gort::detail::poll_close(pd);
    close(fds[0]);
    close(fds[1]);
  });
}

// The time shown is the wait's, in the clock's units: the cycle counter is
// scaled correctly.
TEST_P(Debug, WaitTimeGrows) {
  run([] {
    gort::WaitGroup blocker, wg;
    blocker.add(1);
    wg.add(1);
    gort::spawn(gort::SpawnOptions{.name = "patient"}, [&] {
      blocker.wait();
      wg.done();
    });
    expect_parked("patient", "waitgroup");
    gort::sleep_for(400ms);
    std::smatch m;
    std::string text = gort::debug::fibers_text();
    ASSERT_TRUE(std::regex_search(text, m, std::regex("\"patient\" \\[waitgroup, ([0-9]+) ms\\]"))) << text;
    int ms = std::stoi(m[1]);
    EXPECT_GE(ms, 350) << text;
    EXPECT_LT(ms, 10'000) << text;
    blocker.done();
    wg.wait();
  });
}

TEST_P(Debug, WorkersAndTheRunningFiber) {
  int n = workers();
  run([n] {
    std::string text = gort::debug::fibers_text();
    EXPECT_TRUE(std::regex_search(text, std::regex("^gort: " + std::to_string(n) + " workers, "))) << text;
    for (int i = 0; i < n; ++i) EXPECT_NE(text.find("worker " + std::to_string(i) + ": "), std::string::npos) << text;
    // The main fiber (the caller) is running, and so listed as such.
    EXPECT_TRUE(std::regex_search(text, std::regex("worker [0-9]+: running fiber [0-9]+\n"))) << text;
    EXPECT_TRUE(std::regex_search(text, std::regex("fiber [0-9]+ \"main\" \\[running\\]"))) << text;
  });
}

// A fiber that holds its worker without a runtime call is shown as stuck
// on its worker (the monitor's verdict).
TEST_P(Debug, StuckWorkerIsMarked) {
  run([] {
    std::atomic<bool> release{false};
    gort::WaitGroup wg;
    wg.add(1);
    gort::spawn(gort::SpawnOptions{.name = "hog"}, [&] {
      while (!release.load()) std::this_thread::sleep_for(1ms);  // no runtime call
      wg.done();
    });
    std::string text = dump_once_listed("worker [0-9]+: running fiber [0-9]+, stuck\n");
    EXPECT_TRUE(std::regex_search(text, std::regex("worker [0-9]+: running fiber [0-9]+, stuck\n"))) << text;
    release.store(true);
    wg.wait();
  });
}

// Fibers that returned are not listed: their blocks are kDead.
TEST_P(Debug, ReturnedFibersAreNotListed) {
  run([] {
    gort::WaitGroup wg;
    wg.add(20);
    for (int i = 0; i < 20; ++i) gort::spawn(gort::SpawnOptions{.name = "short-lived"}, [&] { wg.done(); });
    wg.wait();
    gort_test::WorkersTest::wait_for_quiescence();
    std::string text = gort::debug::fibers_text();
    EXPECT_EQ(text.find("short-lived"), std::string::npos) << text;
    EXPECT_NE(text.find(", 1 fibers\n"), std::string::npos) << text;
  });
}

TEST(DebugOutside, NoRuntime) { EXPECT_EQ(gort::debug::fibers_text(), "gort: no runtime is running\n"); }
