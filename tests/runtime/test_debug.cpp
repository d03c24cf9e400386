// The fiber dump (<gort/debug.h>): each way of parking shows its wait
// reason, with the fiber's name and for how long; workers are listed.
// Each case parks a named fiber on one thing, polls the dump until that
// fiber's line appears (it may not have parked yet), then releases it.
#include <gort/detail/netpoll.h>

#include <sys/socket.h>

#include <string>

#include "support.h"

using namespace std::chrono_literals;
using gort_test::WorkersTest;

namespace {

// The line of `text` that contains `part`, or "" (no std::regex: GCC 12's
// <regex> does not build warning-free under the sanitizers).
std::string line_with(const std::string& text, const std::string& part) {
  std::size_t at = text.find(part);
  if (at == std::string::npos) return "";
  std::size_t begin = text.rfind('\n', at);
  begin = begin == std::string::npos ? 0 : begin + 1;
  return text.substr(begin, text.find('\n', at) - begin);
}

// The dump once it has a line that contains `part` and ends with `end`
// (the fiber may not have parked yet), or the last dump after 10 s (the
// caller's expectation then fails and prints it).
std::string dump_once_listed(const std::string& part, const std::string& end) {
  std::string text;
  for (auto deadline = std::chrono::steady_clock::now() + 10s; std::chrono::steady_clock::now() < deadline;) {
    text = gort::debug::fibers_text();
    std::string line = line_with(text, part);
    if (!line.empty() && line.ends_with(end)) break;
    gort::sleep_for(1ms);
  }
  return text;
}

// How long a parked fiber's line says it has waited, in ms; -1 if the line
// does not end with a duration in ms.
int waited_ms(const std::string& line) {
  std::size_t comma = line.rfind(", ");
  if (comma == std::string::npos || !line.ends_with(" ms]")) return -1;
  return std::atoi(line.c_str() + comma + 2);
}

// Expects the line: fiber ID "name" [reason, N ms]
void expect_parked(const char* name, const std::string& reason) {
  std::string part = std::string("\"") + name + "\" [" + reason + ", ";
  std::string text = dump_once_listed(part, " ms]");
  std::string line = line_with(text, part);
  EXPECT_EQ(line.rfind("fiber ", 0), 0u) << "no line with '" << part << "' in:\n" << text;
  EXPECT_GE(waited_ms(line), 0) << line;
}

// Frames the backtrace tests look for: not inlined, so each is a frame of
// its own with its own name.
__attribute__((noinline)) int wait_in_a_named_frame(gort::Chan<int>& ch) {
  int v = ch.recv().value_or(0);
  asm volatile("" ::: "memory");  // keeps the call from becoming a tail call
  return v + 1;
}
__attribute__((noinline)) int call_the_named_frame(gort::Chan<int>& ch) {
  int v = wait_in_a_named_frame(ch);
  asm volatile("" ::: "memory");
  return v + 1;
}

// The lines after `header`'s line, up to the next line that does not
// start with a space (the next fiber's).
std::string stack_after(const std::string& text, const std::string& header) {
  std::size_t at = text.find(header);
  if (at == std::string::npos) return "";
  std::size_t begin = text.find('\n', at);
  if (begin == std::string::npos) return "";
  std::size_t end = ++begin;
  while (end < text.size() && text[end] == ' ') {
    std::size_t nl = text.find('\n', end);
    end = nl == std::string::npos ? text.size() : nl + 1;
  }
  return text.substr(begin, end - begin);
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
    std::string text = gort::debug::fibers_text();
    int ms = waited_ms(line_with(text, "\"patient\" [waitgroup, "));
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
    EXPECT_EQ(text.rfind("gort: " + std::to_string(n) + " workers, ", 0), 0u) << text;
    for (int i = 0; i < n; ++i) EXPECT_NE(text.find("\nworker " + std::to_string(i) + ": "), std::string::npos) << text;
    // The main fiber (the caller, fiber 1) is running, and so listed as such.
    EXPECT_NE(text.find(": running fiber 1\n"), std::string::npos) << text;
    EXPECT_NE(text.find("\nfiber 1 \"main\" [running]\n"), std::string::npos) << text;
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
    std::string text = dump_once_listed(", stuck\n", "");
    std::string line = line_with(text, ", stuck\n");
    EXPECT_EQ(line.rfind("worker ", 0), 0u) << text;
    EXPECT_NE(line.find(": running fiber "), std::string::npos) << text;
    release.store(true);
    wg.wait();
  });
}

// Dumps made while fibers spawn, park, wake and return on every worker:
// each is well formed and none faults (the sanitizer builds check the
// reads; the dump's racy copy is excluded from their instrumentation).
// A parked fiber's backtrace, unwound from its saved registers: the user's
// frames innermost first with demangled names and file:line, the
// runtime's own frames hidden; a second fiber parked the same way points
// at the first instead of repeating it.
TEST_P(Debug, ParkedFibersShowTheirStacks) {
  run([] {
    gort::Chan<int> ch;
    gort::WaitGroup wg;
    wg.add(2);
    for (const char* name : {"deep-1", "deep-2"})
      gort::spawn(gort::SpawnOptions{.name = name}, [&] {
        (void)call_the_named_frame(ch);
        wg.done();
      });
    expect_parked("deep-1", "chan receive");
    expect_parked("deep-2", "chan receive");
    std::string text = gort::debug::fibers_text();
    std::string first = stack_after(text, "\"deep-1\" [chan receive");
    std::string second = stack_after(text, "\"deep-2\" [chan receive");
    std::size_t inner = first.find("wait_in_a_named_frame(gort::Chan<int>&)");
    std::size_t outer = first.find("call_the_named_frame(gort::Chan<int>&)");
    EXPECT_NE(inner, std::string::npos) << text;
    EXPECT_NE(outer, std::string::npos) << text;
    EXPECT_LT(inner, outer) << "innermost frame first:\n" << text;
    EXPECT_NE(first.find("test_debug.cpp:"), std::string::npos) << "file:line of each frame:\n" << text;
    EXPECT_EQ(first.find("gort::detail::"), std::string::npos) << "the runtime's frames are hidden:\n" << text;
    // The innermost frame is the call into gort (inlined into the caller,
    // where the compiler recorded the inlining), else its caller.
    EXPECT_TRUE(first.starts_with("    gort::Chan<int>::recv") || first.find("wait_in_a_named_frame") < first.find('\n'))
        << "the first frame is where the fiber called into gort:\n" << text;
    // Which of the two is listed first depends on ids; the other says
    // "same stack as fiber N".
    EXPECT_NE((first + second).find("    same stack as fiber "), std::string::npos) << text;
    ch.send(1);
    ch.send(2);
    wg.wait();
  });
}

// GORT_TRACEBACK=system shows the runtime's frames too.
TEST_P(Debug, TracebackSystemShowsTheRuntimesFrames) {
  ::setenv("GORT_TRACEBACK", "system", 1);
  run([] {
    gort::Chan<int> ch;
    gort::WaitGroup wg;
    wg.add(1);
    gort::spawn(gort::SpawnOptions{.name = "deep"}, [&] {
      (void)call_the_named_frame(ch);
      wg.done();
    });
    expect_parked("deep", "chan receive");
    std::string text = gort::debug::fibers_text();
    std::string stack = stack_after(text, "\"deep\" [chan receive");
    EXPECT_NE(stack.find("gort::detail::"), std::string::npos) << text;
    EXPECT_NE(stack.find("wait_in_a_named_frame"), std::string::npos) << text;
    ch.send(1);
    wg.wait();
  });
  ::unsetenv("GORT_TRACEBACK");
}

TEST_P(Debug, DumpWhileFibersComeAndGo) {
  run([] {
    std::atomic<bool> stop{false};
    gort::WaitGroup wg;
    constexpr int kChurners = 4;
    wg.add(kChurners);
    for (int c = 0; c < kChurners; ++c) {
      gort::spawn(gort::SpawnOptions{.name = "churner"}, [&] {
        gort::Chan<int> ping;
        while (!stop.load()) {
          gort::WaitGroup round;
          round.add(8);
          for (int i = 0; i < 8; ++i)
            gort::spawn(gort::SpawnOptions{.name = "short-lived"}, [&] {
              gort::yield();
              round.done();
            });
          go_spawn([&] { ping.send(1); });
          (void)ping.recv();
          round.wait();
        }
        wg.done();
      });
    }
    for (int i = 0; i < 200 / gort_test::kScale; ++i) {
      std::string text = gort::debug::fibers_text();
      ASSERT_EQ(text.rfind("gort: ", 0), 0u) << text;
      ASSERT_EQ(text.back(), '\n');
      gort::yield();
    }
    stop.store(true);
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
