// fiber_pool.cpp: see fiber_pool.h for the design.
#include "fiber_pool.h"

#include <sys/mman.h>

#include <algorithm>
#include <array>
#include <new>

#include "platform.h"

#ifndef MADV_POPULATE_WRITE
#define MADV_POPULATE_WRITE 23
#endif

namespace gort::detail {

FiberPool::FiberPool() {
  void* p = mmap(nullptr, kMaxFiberRecords * kFiberRecordBytes, PROT_READ | PROT_WRITE,
                 MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  if (p == MAP_FAILED) throw std::bad_alloc();
  base_ = static_cast<char*>(p);
}

FiberPool::~FiberPool() { munmap(base_, kMaxFiberRecords * kFiberRecordBytes); }

std::size_t FiberPool::free_count() const {
  std::lock_guard lock(mu_);
  return free_.size() + cold_.size();
}

namespace {

// Whether sorted[i..] starts with every record of one page (the records of
// a page, sorted, are consecutive from the page's first).
bool whole_page_at(const std::vector<void*>& sorted, std::size_t i) {
  const std::size_t page = page_size(), per_page = page / kFiberRecordBytes;
  auto* first = static_cast<char*>(sorted[i]);
  return (reinterpret_cast<uintptr_t>(first) & (page - 1)) == 0 && i + per_page <= sorted.size() &&
         static_cast<char*>(sorted[i + per_page - 1]) == first + page - kFiberRecordBytes;
}

}  // namespace

std::size_t FiberPool::pages_fully_free() const {
  std::vector<void*> all;
  {
    std::lock_guard lock(mu_);
    all.assign(free_.begin(), free_.end());
    all.insert(all.end(), cold_.begin(), cold_.end());
  }
  std::sort(all.begin(), all.end());
  const std::size_t per_page = page_size() / kFiberRecordBytes;
  std::size_t pages = 0;
  for (std::size_t i = 0; i < all.size();) {
    if (whole_page_at(all, i)) {
      ++pages;
      i += per_page;
    } else {
      ++i;
    }
  }
  return pages;
}

std::size_t FiberPool::cold_count() const {
  std::lock_guard lock(mu_);
  return cold_.size();
}

// Called with mu_ held. Every record of the chunk is written by its first
// spawn: commit the chunk in one call rather than a page fault per 16
// records (failure, under memory pressure, is harmless: they fault later).
void FiberPool::carve() {
  std::size_t n = carved_.load(std::memory_order_relaxed);
  if (n + kRecordsPerCarve > kMaxFiberRecords) throw std::bad_alloc();
  char* chunk = base_ + n * kFiberRecordBytes;
  // All or none: a range inserted at a deque's end allocates its blocks
  // before it moves anything, so a throw leaves no part of the chunk
  // listed while carved_ says it is not (the next carve would list it again).
  // Handed out from the back: the chunk's first record first.
  std::array<void*, kRecordsPerCarve> records;
  for (std::size_t i = 0; i < kRecordsPerCarve; ++i)
    records[i] = chunk + (kRecordsPerCarve - 1 - i) * kFiberRecordBytes;
  free_.insert(free_.end(), records.begin(), records.end());
  madvise(chunk, kRecordsPerCarve * kFiberRecordBytes, MADV_POPULATE_WRITE);
  unpoison_fresh_memory(chunk, kRecordsPerCarve * kFiberRecordBytes);
  // release: the dump reads records up to carved() without the lock.
  carved_.store(n + kRecordsPerCarve, std::memory_order_release);
}

// Called with mu_ held: warm records first, then those on given-back
// pages, then a new chunk.
void* FiberPool::take_one() {
  if (free_.empty() && cold_.empty()) carve();
  void* r;
  if (!free_.empty()) {
    r = free_.back();
    free_.pop_back();
    low_water_ = std::min(low_water_, free_.size());
  } else {
    r = cold_.back();
    cold_.pop_back();
  }
  return r;
}

void* FiberPool::allocate() {
  std::lock_guard lock(mu_);
  return take_one();
}

void FiberPool::release(void* record) {
  std::lock_guard lock(mu_);
  free_.push_back(record);
}

std::size_t FiberPool::take_batch(void** out, std::size_t max) {
  std::lock_guard lock(mu_);
  std::size_t n = std::min(max, free_.size());
  std::copy(free_.end() - std::ptrdiff_t(n), free_.end(), out);
  free_.resize(free_.size() - n);
  low_water_ = std::min(low_water_, free_.size());
  for (; n < max && !cold_.empty(); ++n) {
    out[n] = cold_.back();
    cold_.pop_back();
  }
  return n;
}

void FiberPool::release_batch(void* const* in, std::size_t n) {
  std::lock_guard lock(mu_);
  free_.insert(free_.end(), in, in + n);
}

std::size_t FiberPool::idle_estimate() const {
  std::lock_guard lock(mu_);
  return idle_count();
}

std::size_t FiberPool::scavenge() {
  std::vector<void*> idle;
  // Room before the lock, so that no page of it faults in under the lock:
  // the low-water mark only falls between scavenges.
  idle.reserve(idle_estimate());
  {
    std::lock_guard lock(mu_);
    std::size_t n = idle_count();
    idle.assign(free_.begin(), free_.begin() + std::ptrdiff_t(n));
    // Frees the deque's emptied blocks: after a peak the list keeps no
    // more than its block map.
    free_.erase(free_.begin(), free_.begin() + std::ptrdiff_t(n));
    low_water_ = free_.size();
  }
  if (idle.empty()) return 0;
  // A page goes back when all of its records are idle. Those go cold; the
  // others back to the warm list's cold end (its front).
  std::sort(idle.begin(), idle.end());
  const std::size_t page = page_size();
  const std::size_t per_page = page / kFiberRecordBytes;
  std::vector<void*> cold, warm;
  {
    MadviseBatch dontneed(MADV_DONTNEED);
    for (std::size_t i = 0; i < idle.size();) {
      if (whole_page_at(idle, i)) {
        dontneed.add(idle[i], page);
        cold.insert(cold.end(), idle.begin() + std::ptrdiff_t(i), idle.begin() + std::ptrdiff_t(i + per_page));
        i += per_page;
      } else {
        warm.push_back(idle[i++]);
      }
    }
    dontneed.flush();
  }
  std::lock_guard lock(mu_);
  free_.insert(free_.begin(), warm.begin(), warm.end());
  low_water_ += warm.size();
  cold_.insert(cold_.end(), cold.begin(), cold.end());
  return cold.size() / per_page;
}

void FiberCache::refill() {
  n_ = pool_->take_batch(slots_, kRecordCacheLimit / 4);
  if (n_ == 0) slots_[n_++] = pool_->allocate();
}

void FiberCache::overflow() {
  std::size_t half = n_ / 2;
  pool_->release_batch(slots_, half);
  std::copy(slots_ + half, slots_ + n_, slots_);
  n_ -= half;
}

void FiberCache::shrink_when_idle() {
  if (n_ <= kIdleRecordsKept) return;
  std::size_t older = n_ - kIdleRecordsKept;
  pool_->release_batch(slots_, older);
  std::copy(slots_ + older, slots_ + n_, slots_);
  n_ = kIdleRecordsKept;
}

void FiberCache::flush() {
  pool_->release_batch(slots_, n_);
  n_ = 0;
}

}  // namespace gort::detail
