// The poller backend's interrupt (poller.h): it must reach the thread
// blocked in wait() even while other threads poll without blocking, as busy
// workers and the monitor do at any moment. The worker asleep in the poller
// is the one a wake-up picks; an interrupt a nonblocking poll took instead
// left it asleep with a fiber waiting in the injector.
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <thread>

#include "platform.h"
#include "poller.h"

namespace d = gort::detail;
using namespace std::chrono_literals;

namespace {

TEST(Poller, InterruptReachesTheBlockedWaiterWhileOthersPollWithoutBlocking) {
  d::PollerBackend backend;
  int error = 0;
  ASSERT_TRUE(backend.init(&error)) << error;
  std::atomic<bool> stop{false};
  // Two threads polling without blocking as fast as they can.
  std::thread pollers[2];
  for (auto& t : pollers)
    t = std::thread([&] {
      d::PollEvent events[16];
      while (!stop.load(std::memory_order_relaxed)) (void)backend.wait(0, events, 16);
    });
  constexpr int kRounds = 2000;
  int missed = 0;
  for (int round = 0; round < kRounds && missed == 0; ++round) {
    std::atomic<bool> returned{false};
    // Blocks until the interrupt (kNever: no timeout to hide a lost one).
    std::thread sleeper([&] {
      d::PollEvent events[16];
      (void)backend.wait(d::kNever, events, 16);
      returned.store(true);
    });
    if (round % 2 == 0) std::this_thread::sleep_for(50us);  // the interrupt before or after the sleeper is in
    backend.interrupt();
    auto deadline = std::chrono::steady_clock::now() + 5s;
    while (!returned.load() && std::chrono::steady_clock::now() < deadline) std::this_thread::sleep_for(20us);
    if (!returned.load()) {
      ++missed;
      // Release the sleeper for good: a blocking wait of our own takes
      // nothing away from it now, so interrupt until it returns.
      while (!returned.load()) {
        backend.interrupt();
        std::this_thread::sleep_for(1ms);
        d::PollEvent events[16];
        (void)backend.wait(1, events, 16);  // a blocking wait (deadline past) drains, so the next write lands
      }
    }
    sleeper.join();
  }
  stop.store(true);
  for (auto& t : pollers) t.join();
  EXPECT_EQ(missed, 0) << "a blocking wait slept through an interrupt that a nonblocking poll took";
}

}  // namespace
