// fiber_pool.h: where fiber control blocks live — fixed-size records,
// apart from the stacks, pooled per worker and given back after a peak.
//
// Design
//  * A fiber is a record of kFiberRecordBytes: its control block (Fiber)
//    and, right after it, room for a small task (the callable and its
//    arguments). Its stack is bound when the fiber first runs, on the
//    worker that runs it (bind_stack_on_first_run, scheduler.h): spawning
//    writes one record and takes no stack. Go keeps its g apart from its
//    stack too. What that buys a fan-out: the spawner writes records that
//    share pages instead of one stack top per page, and the worker that
//    runs the fibers takes for each a stack a fiber just gave back there,
//    hot in its cache and TLB, instead of a stack the spawner wrote from
//    another core; a fiber queued and not yet run holds no stack at all.
//    A task too large for the record goes at the top of a stack bound at
//    spawn.
//  * Records are carved from one MAP_NORESERVE reservation of
//    kMaxFiberRecords (address space, not memory), kRecordsPerCarve at a
//    time, with the chunk's pages committed in one call. The reservation is
//    never unmapped while the runtime runs, so a record's memory is always
//    readable: the fiber dump and tools/gdb/gort.py walk [base, base +
//    carved) and read every record.
//  * Freed records go to the freeing worker's FiberCache (no locks), which
//    overflows half of itself to the pool and refills in batches, as the
//    stack caches do. A worker going idle keeps kIdleRecordsKept.
//  * Memory back after a peak: the pool's free list is used from its back;
//    the records below its low-water mark since the previous scavenge were
//    not handed out for a whole period. scavenge() takes them out under the
//    lock, gives back (one batched MADV_DONTNEED) every page all of whose
//    records are among them, and puts those on the cold list, handed out
//    only when no warm record is left, the rest back on the warm list. A
//    given-back page reads as zeros until a record on it is used again:
//    id 0, which the dump skips.
//
// Invariants
//  * A record is in exactly one place: a live fiber, a FiberCache, the
//    pool's warm or cold list, or, for the length of one scavenge, the scavenger's
//    hands. A page is given back only while every record on it is in the
//    scavenger's hands.
//  * A record whose fiber died keeps state kDead (nothing clears it) until
//    it is reused or its page given back; the dump skips both.
#pragma once

#include <algorithm>
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <mutex>
#include <vector>

namespace gort::detail {

inline constexpr std::size_t kFiberRecordBytes = 256;
inline constexpr std::size_t kMaxFiberRecords = std::size_t(1) << 23;  // 2 GiB of address space
inline constexpr std::size_t kRecordsPerCarve = 256;                   // 64 KiB
inline constexpr std::size_t kRecordCacheLimit = 512;
inline constexpr std::size_t kIdleRecordsKept = 64;

// Process-wide: the reservation and the shared free list. Thread-safe.
class FiberPool {
 public:
  FiberPool();   // reserves the address space; throws std::bad_alloc if refused
  ~FiberPool();  // unmaps it: no record may be in use
  FiberPool(const FiberPool&) = delete;
  FiberPool& operator=(const FiberPool&) = delete;

  // One record (uninitialized memory, kFiberRecordBytes, aligned to them).
  // Throws std::bad_alloc past kMaxFiberRecords.
  void* allocate();
  void release(void* record);
  // Moves up to max records into out[0..); returns how many (0 only if
  // there were none: then allocate() carves).
  std::size_t take_batch(void** out, std::size_t max);
  void release_batch(void* const* in, std::size_t n);  // moves all n in
  // Gives back the pages whose records all stayed in the free list, not
  // handed out, for a whole period; returns how many pages. The monitor's.
  std::size_t scavenge();

  // The records carved so far: [base(), base() + carved() *
  // kFiberRecordBytes). Any thread: carved() is published with release
  // after the chunk's memory is ready, and the reservation stays mapped.
  char* base() const { return base_; }
  std::size_t carved() const { return carved_.load(std::memory_order_acquire); }
  std::size_t free_count() const;  // in the pool (not in caches)
  std::size_t cold_count() const;  // in the pool, on given-back pages
  // Pages all of whose records are in the pool, warm or cold: those the
  // scavenger can give back. For tests; a walk of the pool under its lock.
  std::size_t pages_fully_free() const;

 private:
  void carve();                       // with mu_ held: kRecordsPerCarve more records into free_
  void* take_one();                   // with mu_ held
  std::size_t idle_estimate() const;  // at least as many as scavenge() will take, if called next
  // Warm records not taken since the last scavenge (mu_ held).
  std::size_t idle_count() const { return std::min(low_water_, free_.size()); }

  char* base_ = nullptr;
  std::atomic<std::size_t> carved_{0};
  mutable std::mutex mu_;
  // Deques, not vectors: growing to a peak's million records adds a
  // block, where a vector would copy the whole array into fresh pages
  // under mu_, holding every worker that spawns or frees meanwhile.
  std::deque<void*> free_;     // warm: taken from the back; guarded by mu_
  std::deque<void*> cold_;     // on given-back pages: taken when free_ is empty; guarded by mu_
  std::size_t low_water_ = 0;  // fewest records in free_ since the last scavenge; guarded by mu_
};

// A worker's private record cache: only its owner touches it.
class FiberCache {
 public:
  explicit FiberCache(FiberPool* pool) : pool_(pool) {}
  ~FiberCache() { flush(); }
  FiberCache(const FiberCache&) = delete;
  FiberCache& operator=(const FiberCache&) = delete;

  void* get() {
    if (__builtin_expect(n_ == 0, 0)) refill();
    return slots_[--n_];
  }
  void put(void* record) {
    slots_[n_++] = record;
    if (__builtin_expect(n_ > kRecordCacheLimit, 0)) overflow();
  }
  // Going idle: keeps the newest kIdleRecordsKept, the rest go to the pool
  // where the scavenger can reach them.
  void shrink_when_idle();
  void flush();  // everything back to the pool

 private:
  void refill();    // at least one record in
  void overflow();  // gives the older half to the pool

  FiberPool* pool_;
  // A fixed array rather than a vector: get and put are on every spawn and
  // exit, and need no capacity check. Taken from and put at the top
  // (newest first).
  std::size_t n_ = 0;
  void* slots_[kRecordCacheLimit + 1];
};

}  // namespace gort::detail
