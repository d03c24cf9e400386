// load/histogram.cpp -- see histogram.h.

#include "load/histogram.h"

#include <algorithm>
#include <bit>
#include <cmath>

namespace load {

std::size_t bucket_of(std::uint64_t value) noexcept {
  if (value > kMaxValue) value = kMaxValue;
  if (value < kSubBuckets) return std::size_t(value);
  int exponent = 63 - std::countl_zero(value);  // >= kSubBits
  int shift = exponent - kSubBits;
  // Block (exponent - kSubBits + 1) of kSubBuckets buckets; within it, the
  // kSubBits bits below the leading one.
  return std::size_t(shift + 1) * kSubBuckets + std::size_t((value >> shift) - kSubBuckets);
}

std::uint64_t bucket_low(std::size_t bucket) noexcept {
  if (bucket < kSubBuckets) return bucket;
  std::uint64_t block = bucket / kSubBuckets;  // >= 1
  std::uint64_t sub = bucket % kSubBuckets;
  return (kSubBuckets + sub) << (block - 1);
}

std::uint64_t bucket_high(std::size_t bucket) noexcept {
  if (bucket < kSubBuckets) return bucket;
  std::uint64_t block = bucket / kSubBuckets;
  return bucket_low(bucket) + (std::uint64_t(1) << (block - 1)) - 1;
}

void HistogramData::record(std::uint64_t value, std::uint64_t times) {
  counts_[bucket_of(value)] += times;
  count_ += times;
  sum_ += value * times;
  max_ = std::max(max_, value);
}

void HistogramData::merge(const HistogramData& other) {
  for (std::size_t i = 0; i < kBuckets; ++i) counts_[i] += other.counts_[i];
  count_ += other.count_;
  sum_ += other.sum_;
  max_ = std::max(max_, other.max_);
}

HistogramData HistogramData::since(const HistogramData& earlier) const {
  HistogramData d;
  for (std::size_t i = 0; i < kBuckets; ++i) d.counts_[i] = counts_[i] - std::min(counts_[i], earlier.counts_[i]);
  d.count_ = count_ - std::min(count_, earlier.count_);
  d.sum_ = sum_ - std::min(sum_, earlier.sum_);
  d.max_ = max_;
  return d;
}

std::uint64_t HistogramData::percentile(double q) const noexcept {
  if (count_ == 0) return 0;
  q = std::clamp(q, 0.0, 1.0);
  // The rank of the sample sought, 1-based: ceil(q * count), at least 1.
  auto rank = std::max<std::uint64_t>(1, std::uint64_t(std::ceil(q * double(count_))));
  std::uint64_t seen = 0;
  for (std::size_t i = 0; i < kBuckets; ++i) {
    seen += counts_[i];
    if (seen >= rank) return std::min(bucket_high(i), max_);
  }
  return max_;  // unreachable: count_ is the sum of the buckets
}

Histogram::Histogram() : counts_(new std::atomic<std::uint64_t>[kBuckets]) {
  for (std::size_t i = 0; i < kBuckets; ++i) counts_[i].store(0, std::memory_order_relaxed);
}

void Histogram::record(std::uint64_t value) noexcept {
  // Relaxed throughout: the counters are statistics, read by snapshots that
  // tolerate a sample half-recorded (histogram.h).
  counts_[bucket_of(value)].fetch_add(1, std::memory_order_relaxed);
  sum_.fetch_add(value, std::memory_order_relaxed);
  std::uint64_t seen = max_.load(std::memory_order_relaxed);
  while (value > seen && !max_.compare_exchange_weak(seen, value, std::memory_order_relaxed)) {
  }
}

void Histogram::snapshot_into(HistogramData& out) const {
  // The count is the sum of the buckets read, so a snapshot is consistent
  // with itself even while recorders run.
  for (std::size_t i = 0; i < kBuckets; ++i) {
    std::uint64_t n = counts_[i].load(std::memory_order_relaxed);
    out.counts_[i] += n;
    out.count_ += n;
  }
  out.sum_ += sum_.load(std::memory_order_relaxed);
  out.max_ = std::max(out.max_, max_.load(std::memory_order_relaxed));
}

}  // namespace load
