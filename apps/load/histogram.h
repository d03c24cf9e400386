// load/histogram.h -- latency histograms with bounded memory (HDR-style
// log-linear buckets), for dumb_load.
//
// Buckets.  Values (nanoseconds) below 2^kSubBits have a bucket each; above,
// every power of two [2^e, 2^(e+1)) is cut into 2^kSubBits equal buckets, so
// a bucket is never wider than 1/128 of its values (< 0.8% relative error)
// and the whole range up to kMaxValue (2^40 ns, ~18 minutes) takes
// kBuckets = 4352 counters whatever the number of samples.  Larger values
// land in the last bucket; the exact maximum is kept on the side.
//
// Two types:
//   Histogram       what recorders write: relaxed atomic counters, so many
//                   fibers (on any worker) record into one without a lock.
//                   dumb_load keeps a few shards and spreads connections over
//                   them to keep cache lines apart.
//   HistogramData   a plain copy (snapshot) that is merged, subtracted (the
//                   last second = now - a second ago) and queried.
// A snapshot taken while recorders run is not atomic as a whole, but its
// count is the sum of the buckets it read, so it is consistent with itself;
// a sample half-recorded (in its bucket, not yet in the sum) is merely
// counted in the next one.
//
// Percentile convention (HDR's): percentile(q) is the highest value
// equivalent to the bucket holding the ceil(q * count)-th smallest sample,
// capped by the exact maximum -- a conservative (never low) figure.

#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <vector>

namespace load {

inline constexpr int kSubBits = 7;
inline constexpr std::uint64_t kSubBuckets = std::uint64_t(1) << kSubBits;  // 128
inline constexpr int kMaxExponent = 40;                                     // values < 2^40 ns kept apart
inline constexpr std::uint64_t kMaxValue = (std::uint64_t(1) << kMaxExponent) - 1;
inline constexpr std::size_t kBuckets = std::size_t(kMaxExponent - kSubBits + 1) * kSubBuckets;

// The bucket of a value (values above kMaxValue share the last bucket).
std::size_t bucket_of(std::uint64_t value) noexcept;
// The smallest and the largest value of a bucket.
std::uint64_t bucket_low(std::size_t bucket) noexcept;
std::uint64_t bucket_high(std::size_t bucket) noexcept;

class HistogramData {
 public:
  HistogramData() : counts_(kBuckets, 0) {}

  void record(std::uint64_t value, std::uint64_t times = 1);
  void merge(const HistogramData& other);
  // this - earlier, bucket by bucket (earlier must be an older snapshot of
  // the same histogram).  The maximum is kept: it is not subtractable.
  HistogramData since(const HistogramData& earlier) const;

  std::uint64_t count() const noexcept { return count_; }
  std::uint64_t max() const noexcept { return max_; }
  double mean() const noexcept { return count_ ? double(sum_) / double(count_) : 0.0; }
  // q in [0, 1]; 0 when empty.
  std::uint64_t percentile(double q) const noexcept;

 private:
  friend class Histogram;
  std::vector<std::uint64_t> counts_;  // kBuckets
  std::uint64_t count_ = 0;
  std::uint64_t sum_ = 0;  // for the mean; wraps after ~584 years of latency
  std::uint64_t max_ = 0;
};

class Histogram {
 public:
  Histogram();
  Histogram(const Histogram&) = delete;
  Histogram& operator=(const Histogram&) = delete;

  void record(std::uint64_t value) noexcept;
  // Adds the current counts to *out.
  void snapshot_into(HistogramData& out) const;

 private:
  std::unique_ptr<std::atomic<std::uint64_t>[]> counts_;  // kBuckets, relaxed
  std::atomic<std::uint64_t> sum_{0};                     // relaxed
  std::atomic<std::uint64_t> max_{0};                     // CAS-max, relaxed
};

}  // namespace load
