// tests/load/test_histogram.cpp -- load/histogram.h: bucketing, percentiles,
// merging, subtraction, the atomic recorder.

#include <gtest/gtest.h>

#include <random>
#include <thread>
#include <vector>

#include "load/histogram.h"

namespace load {
namespace {

TEST(Buckets, SmallValuesAreExact) {
  for (std::uint64_t v = 0; v < kSubBuckets; ++v) {
    EXPECT_EQ(bucket_of(v), v);
    EXPECT_EQ(bucket_low(bucket_of(v)), v);
    EXPECT_EQ(bucket_high(bucket_of(v)), v);
  }
}

TEST(Buckets, EveryValueLiesInItsBucketAndBucketsAreNarrow) {
  std::mt19937_64 rng(1);
  for (int i = 0; i < 200000; ++i) {
    std::uint64_t v = rng() >> (rng() % 64);
    if (v > kMaxValue) v = kMaxValue;
    std::size_t b = bucket_of(v);
    ASSERT_LT(b, kBuckets);
    ASSERT_LE(bucket_low(b), v);
    ASSERT_GE(bucket_high(b), v);
    // Width at most 1/128 of the bucket's values.
    ASSERT_LE(bucket_high(b) - bucket_low(b), bucket_low(b) / kSubBuckets) << v;
  }
}

TEST(Buckets, ContiguousAndIncreasing) {
  for (std::size_t b = 1; b < kBuckets; ++b) ASSERT_EQ(bucket_low(b), bucket_high(b - 1) + 1) << b;
  EXPECT_EQ(bucket_high(kBuckets - 1), kMaxValue);
  EXPECT_EQ(bucket_of(kMaxValue + 12345), kBuckets - 1);  // beyond the range: the last bucket
}

TEST(Percentiles, ExactForSmallValues) {
  HistogramData h;
  for (std::uint64_t v = 1; v <= 100; ++v) h.record(v);
  EXPECT_EQ(h.count(), 100u);
  EXPECT_EQ(h.percentile(0.50), 50u);
  EXPECT_EQ(h.percentile(0.90), 90u);
  EXPECT_EQ(h.percentile(0.99), 99u);
  EXPECT_EQ(h.percentile(1.0), 100u);
  EXPECT_EQ(h.percentile(0.0), 1u);
  EXPECT_EQ(h.max(), 100u);
  EXPECT_DOUBLE_EQ(h.mean(), 50.5);
}

TEST(Percentiles, EmptyIsZero) {
  HistogramData h;
  EXPECT_EQ(h.percentile(0.99), 0u);
  EXPECT_EQ(h.max(), 0u);
}

TEST(Percentiles, WithinRelativeErrorAndNeverLow) {
  // 1..1e6 us in ns: compare with the exact order statistics.
  HistogramData h;
  std::vector<std::uint64_t> values;
  std::mt19937_64 rng(7);
  for (int i = 0; i < 100000; ++i) {
    std::uint64_t v = 1000 + rng() % 1'000'000'000;
    values.push_back(v);
    h.record(v);
  }
  std::sort(values.begin(), values.end());
  for (double q : {0.5, 0.9, 0.99, 0.999}) {
    std::uint64_t exact = values[std::size_t(std::ceil(q * double(values.size()))) - 1];
    std::uint64_t got = h.percentile(q);
    EXPECT_GE(got, exact) << q;
    EXPECT_LE(double(got - exact), double(exact) / kSubBuckets + 1) << q;
  }
  EXPECT_EQ(h.percentile(1.0), values.back());  // capped by the exact maximum
}

TEST(Percentiles, OneOutlierShowsInTheTailOnly) {
  HistogramData h;
  h.record(100, 9999);
  h.record(5'000'000'000);  // 5 s
  EXPECT_EQ(h.percentile(0.99), 100u);
  EXPECT_EQ(h.percentile(0.9999), 100u);
  EXPECT_EQ(h.percentile(0.99999), 5'000'000'000u);
  EXPECT_EQ(h.max(), 5'000'000'000u);
}

TEST(Data, MergeAndSince) {
  HistogramData a, b;
  a.record(10, 5);
  b.record(1000, 5);
  HistogramData both = a;
  both.merge(b);
  EXPECT_EQ(both.count(), 10u);
  EXPECT_EQ(both.percentile(0.5), 10u);
  EXPECT_GE(both.percentile(0.6), 1000u);
  HistogramData later = both.since(a);  // what was added after a
  EXPECT_EQ(later.count(), 5u);
  EXPECT_GE(later.percentile(0.0), 1000u);
  EXPECT_LE(later.percentile(0.0), 1000u + 1000u / kSubBuckets);
}

TEST(Recorder, ConcurrentRecordsAllArrive) {
  Histogram h;
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t)
    threads.emplace_back([&h, t] {
      for (int i = 0; i < 50000; ++i) h.record(std::uint64_t(t * 1000 + i % 100));
    });
  for (auto& t : threads) t.join();
  HistogramData d;
  h.snapshot_into(d);
  EXPECT_EQ(d.count(), 200000u);
  EXPECT_EQ(d.max(), 3099u);
  EXPECT_EQ(d.percentile(0.25), 99u);  // thread 0's values are the lowest quarter
}

}  // namespace
}  // namespace load
