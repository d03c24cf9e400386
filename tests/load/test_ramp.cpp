// tests/load/test_ramp.cpp -- load/ramp.h: where the knee is.

#include <gtest/gtest.h>

#include "load/ramp.h"

namespace load {
namespace {

constexpr std::uint64_t kMs = 1'000'000;

StepResult step(int connections, std::uint64_t p99_ms, std::uint64_t requests = 1000, std::uint64_t failures = 0) {
  return {connections, requests, failures, p99_ms * kMs, double(requests - failures)};
}

TEST(Knee, IsTheLastStepWithinBoundsBeforeP99Breaks) {
  KneeFinder k(100 * kMs, 0.01);
  EXPECT_TRUE(k.add(step(500, 5)));
  EXPECT_TRUE(k.add(step(1000, 20)));
  EXPECT_TRUE(k.add(step(1500, 100)));  // at the bound: within
  EXPECT_FALSE(k.add(step(2000, 101)));
  ASSERT_TRUE(k.knee());
  EXPECT_EQ(k.knee()->connections, 1500);
  ASSERT_TRUE(k.broken());
  EXPECT_EQ(k.broken()->connections, 2000);
  EXPECT_EQ(k.reason(), "p99 101.0 ms > 100.0 ms");
  EXPECT_EQ(k.steps(), 4);
  EXPECT_FALSE(k.add(step(2500, 1))) << "after the break, steps are ignored";
  EXPECT_EQ(k.knee()->connections, 1500);
  EXPECT_EQ(k.steps(), 4);
}

TEST(Knee, FailuresBreakItToo) {
  KneeFinder k(100 * kMs, 0.01);
  EXPECT_TRUE(k.add(step(100, 1, 1000, 10)));  // 1%: within
  EXPECT_FALSE(k.add(step(200, 1, 1000, 11)));
  EXPECT_EQ(k.knee()->connections, 100);
  EXPECT_EQ(k.reason(), "errors+timeouts 1.10% of requests > 1.00%");
}

TEST(Knee, AStepWithoutRepliesIsOutOfBounds) {
  KneeFinder k(100 * kMs, 1.0);
  EXPECT_FALSE(k.add(step(100, 0, 0, 0)));
  EXPECT_FALSE(k.knee());
  EXPECT_EQ(k.reason(), "no successful request");
  KneeFinder all_failed(100 * kMs, 1.0);
  EXPECT_FALSE(all_failed.add(step(100, 0, 50, 50)));
}

TEST(Knee, NoneWhenTheFirstStepBreaks) {
  KneeFinder k(10 * kMs, 0.01);
  EXPECT_FALSE(k.add(step(5000, 500)));
  EXPECT_FALSE(k.knee());
  EXPECT_EQ(k.broken()->connections, 5000);
}

TEST(Knee, NotBrokenWhileEveryStepIsWithin) {
  KneeFinder k(10 * kMs, 0);
  for (int c = 100; c <= 1000; c += 100) EXPECT_TRUE(k.add(step(c, 1)));
  EXPECT_EQ(k.knee()->connections, 1000);
  EXPECT_FALSE(k.broken());
  EXPECT_TRUE(k.reason().empty());
}

}  // namespace
}  // namespace load
