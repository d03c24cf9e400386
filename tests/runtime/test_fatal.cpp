// Fatal errors: deadlock, unhandled exceptions, misuse. Each runs in a child
// process (gtest death tests) and must exit with status 2 and Go's wording.
#include <signal.h>
#include <sys/resource.h>
#include <unistd.h>

#include <stdexcept>
#include <thread>

#include "support.h"

using namespace std::chrono_literals;
using gort_test::WorkersTest;

namespace {

// Frames the exception report must show: not inlined, so each is a frame
// of its own.
__attribute__((noinline)) void throw_from_a_named_frame(int x) {
  if (x > 0) throw std::runtime_error("boom");
}
__attribute__((noinline)) void call_the_thrower(int x) {
  throw_from_a_named_frame(x);
  asm volatile("" ::: "memory");  // keeps the call from becoming a tail call
}

}  // namespace

class Fatal : public WorkersTest {
 protected:
  void SetUp() override { GTEST_FLAG_SET(death_test_style, "threadsafe"); }
};
GORT_INSTANTIATE(Fatal);

TEST_P(Fatal, AllAsleepIsReportedAsDeadlock) {
  int n = workers();
  EXPECT_EXIT(gort::run(gort::Config{.workers = n},
                        [] {
                          gort::WaitGroup wg;
                          wg.add(1);
                          wg.wait();  // nobody will ever call done()
                        }),
              ::testing::ExitedWithCode(2), "fatal error: all fibers are asleep - deadlock!");
}

// The report lists the parked fibers with what each waits on, at most 50
// of them and a count of the rest.
TEST_P(Fatal, DeadlockReportListsTheFibers) {
  int n = workers();
  EXPECT_EXIT(gort::run(gort::Config{.workers = n},
                        [] {
                          gort::Chan<int> never;
                          gort::spawn(gort::SpawnOptions{.name = "stuck-receiver"}, [&] { (void)never.recv(); });
                          gort::WaitGroup wg;
                          wg.add(1);
                          for (int i = 0; i < 59; ++i) gort::spawn([&] { wg.wait(); });
                          wg.wait();
                        }),
              ::testing::ExitedWithCode(2),
              "all fibers are asleep - deadlock!.*\n\ngort: [0-9]+ workers, [0-9]+ spares, 61 fibers\n"
              ".*fiber 1 \"main\" \\[waitgroup, [0-9]+ ms\\]"
              ".*fiber [0-9]+ \"stuck-receiver\" \\[chan receive, [0-9]+ ms\\]\n"
              "    gort::Chan<int>::recv\\(\\)"
              ".*\\.\\.\\. and 11 more fibers\n");
}

TEST_P(Fatal, MutexCycleIsReportedAsDeadlock) {
  int n = workers();
  EXPECT_EXIT(gort::run(gort::Config{.workers = n},
                        [] {
                          gort::Mutex a, b;
                          gort::WaitGroup locked, wg;
                          locked.add(2);
                          wg.add(2);
                          go_spawn([&] {
                            a.lock();
                            locked.done();
                            locked.wait();
                            b.lock();
                            wg.done();
                          });
                          go_spawn([&] {
                            b.lock();
                            locked.done();
                            locked.wait();
                            a.lock();
                            wg.done();
                          });
                          wg.wait();
                        }),
              ::testing::ExitedWithCode(2), "all fibers are asleep - deadlock!");
}

// Reported where it was thrown, as Go reports a panic: the fiber, then
// the stack of the throw, innermost first.
TEST_P(Fatal, UnhandledExceptionIsFatal) {
  int n = workers();
  EXPECT_EXIT(gort::run(gort::Config{.workers = n},
                        [] {
                          gort::WaitGroup wg;
                          wg.add(1);
                          gort::spawn(gort::SpawnOptions{.name = "thrower"}, [] { call_the_thrower(1); });
                          wg.wait();
                        }),
              ::testing::ExitedWithCode(2),
              "fatal error: unhandled exception in fiber [0-9]+ \"thrower\": std::runtime_error: boom\n\n"
              "fiber [0-9]+ \"thrower\" \\[running\\]\n"
              "    [^\n]*throw_from_a_named_frame\\(int\\)[^\n]*\n"
              "        [^\n]*\n"
              "    [^\n]*call_the_thrower\\(int\\)[^\n]*\n"
              "        [^\n]*test_fatal.cpp:[0-9]+\n");
}

TEST_P(Fatal, UnhandledNonStdExceptionNamesItsType) {
  int n = workers();
  EXPECT_EXIT(gort::run(gort::Config{.workers = n},
                        [] {
                          gort::WaitGroup wg;
                          wg.add(1);
                          go_spawn([] { throw 42; });
                          wg.wait();
                        }),
              ::testing::ExitedWithCode(2),
              "fatal error: unhandled exception in fiber [0-9]+: int \\(not a std::exception\\)");
}

TEST_P(Fatal, NegativeWaitGroupCounter) {
  int n = workers();
  EXPECT_EXIT(gort::run(gort::Config{.workers = n},
                        [] {
                          gort::WaitGroup wg;
                          wg.done();
                        }),
              ::testing::ExitedWithCode(2), "negative WaitGroup counter");
}

TEST_P(Fatal, PendingTimerIsNotADeadlock) {
  run([] {
    gort::WaitGroup wg;
    wg.add(1);
    go_spawn([&] {
      gort::sleep_for(300ms);
      wg.done();
    });
    wg.wait();
  });
}

TEST_P(Fatal, AnotherThreadThatMayWakeIsNotADeadlock) {
  run([] {
    gort::WaitGroup wg;
    wg.add(1);
    // The thread wakes the main fiber well after the detector's grace period.
    std::thread t([&] {
      std::this_thread::sleep_for(500ms);
      wg.done();
    });
    wg.wait();
    t.join();
  });
}

TEST(FatalConfig, MalformedEnvironmentIsFatal) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  EXPECT_EXIT(
      {
        setenv("GORT_PROCS", "two", 1);
        gort::run([] {});
      },
      ::testing::ExitedWithCode(2), "GORT_PROCS=\"two\": expected a positive integer");
}

// SIGQUIT prints every fiber and exits 2, as Go does; the program keeps
// the default when GORT_TRACEBACK=none, and its own handler if it has one.
TEST_P(Fatal, SigquitPrintsTheFibersAndExits) {
  int n = workers();
  EXPECT_EXIT(gort::run(gort::Config{.workers = n},
                        [] {
                          gort::Chan<int> never;
                          gort::spawn(gort::SpawnOptions{.name = "quiet-one"}, [&] { (void)never.recv(); });
                          gort::sleep_for(10ms);  // it parks meanwhile
                          kill(getpid(), SIGQUIT);
                          gort::sleep_for(30s);
                        }),
              ::testing::ExitedWithCode(2),
              "SIGQUIT: quit\n\ngort: [0-9]+ workers.*fiber 1 \"main\" \\[sleep, [0-9]+ ms\\]"
              ".*fiber [0-9]+ \"quiet-one\" \\[chan receive, [0-9]+ ms\\]");
}

// Sends itself SIGQUIT from the main fiber, then waits for what follows.
void quit_myself(int workers) {
  gort::run(gort::Config{.workers = workers}, [] {
    kill(getpid(), SIGQUIT);
    gort::sleep_for(30s);
  });
}

TEST_P(Fatal, SigquitKeepsTheDefaultUnderTracebackNone) {
  int n = workers();
  rlimit no_core{};
  EXPECT_EXIT(
      {
        setrlimit(RLIMIT_CORE, &no_core);
        setenv("GORT_TRACEBACK", "none", 1);
        quit_myself(n);
      },
      ::testing::KilledBySignal(SIGQUIT), "");
}

TEST_P(Fatal, SigquitLeavesTheProgramsOwnHandler) {
  int n = workers();
  EXPECT_EXIT(
      {
        signal(SIGQUIT, [](int) { _exit(7); });
        quit_myself(n);
      },
      ::testing::ExitedWithCode(7), "");
}

// A SIG_IGN inherited from the shell (a non-interactive shell starts
// background jobs with SIGQUIT ignored) is not the program's own handler:
// the dump still comes, as in Go.
TEST_P(Fatal, SigquitDumpsOverAnInheritedIgnore) {
  int n = workers();
  EXPECT_EXIT(
      {
        signal(SIGQUIT, SIG_IGN);
        quit_myself(n);
      },
      ::testing::ExitedWithCode(2), "SIGQUIT: quit\n\ngort: ");
}
