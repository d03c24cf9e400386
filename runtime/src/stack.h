// stack.h: fiber stacks — reserved, lazily committed, guarded, pooled,
// trimmed and scavenged in batches.
//
// Design
//  * A stack is a range of virtual memory [base, base + size). Its lowest
//    `guard` bytes are a guard region; the fiber runs on the rest, growing down
//    from base + size. The kernel commits a page only when it is first touched,
//    so a fiber that uses little stack costs about one page of memory however
//    large its reservation.
//  * Stacks are carved from slabs of kStacksPerSlab stacks of one size, and
//    slabs from reservations: one mmap(MAP_NORESERVE) each, of twice as
//    many slabs as the size's previous reservation, up to
//    kSlabsPerReservation (one under vm.overcommit_memory=2, which charges
//    the whole mapping), because mmap takes the address space's lock for
//    writing (see slab_space). Each stack's guard is installed with
//    MADV_GUARD_INSTALL (Linux >= 6.13), which marks page-table entries and
//    does NOT split the mapping: 100 000 stacks cost at most one mapping per
//    reservation (adjacent ones even merge), far under vm.max_map_count
//    (65 530). The whole slab's guards go in one process_madvise call
//    (MADV_GUARD_INSTALL), and the top page of every stack is committed in a
//    second (MADV_POPULATE_WRITE), since every fiber touches it: a slab
//    costs two system calls (and a share of its reservation's mmap) for
//    kStacksPerSlab stacks instead of one per guard and a page fault per
//    fiber. Where the kernel can say which pages are present (PAGEMAP_SCAN,
//    Linux >= 6.7), a stack's sentinel page (see below) is left unmapped,
//    and trim maps it only when it reads it; elsewhere the shared zero page
//    is mapped under every sentinel in a third call (MADV_POPULATE_READ).
//    Those calls run without the pool's lock: a worker that finds the pool empty while another carves
//    carves a slab of its own, so a burst's fresh pages fault in on every
//    worker's core at once, and the lock covers only the listing. On older
//    kernels the guard falls back to mprotect(PROT_NONE), which splits the
//    slab into two mappings per stack (the limit is then ~32 000 live
//    fibers); GORT_GUARD=mprotect forces that mode for testing.
//  * Freed stacks go to the freeing worker's StackCache (no locks), which
//    overflows half of itself to the global pool. A stack that comes back may
//    have touched pages below its retained top (kRetainedBytes). Every
//    kTrimBatch frees, when half the cache overflows and when the worker
//    goes idle, the cache trims its stacks in one pass (StackPool::trim): a
//    scan of each stack's sentinel page, the page just below the retained
//    top, tells in user space whether its fiber went deeper (the page reads
//    as zeros until a frame is written there; see went_deep), and those
//    deep ranges, only those, go back to the kernel (MADV_DONTNEED) in one
//    batched call. A stack whose sentinel is not mapped (Stack::Sentinel::
//    kFresh or kScanned), in a run of such stacks close together, as a
//    fan-out frees them, is checked instead by one PAGEMAP_SCAN over the
//    run (present pages that are not the zero page, below the retained
//    tops), at most kScansBeforeMapping times; so a stack used once or
//    twice never has its sentinel mapped. Later checks map it to the zero
//    page, all of a batch's in one call, and read it. One deep recursion
//    does not stay resident past the next batch, and no spawn or exit pays
//    a system call of its own.
//  * Memory back after a peak (Go's background scavenger). A worker going
//    idle keeps at most kIdleCacheKeep stacks and gives the rest to the
//    pool. The pool keeps its free stacks of each size in two lists: warm
//    (top pages may be committed; handed out first, newest first) and cold
//    (given back whole: nothing committed). The monitor calls scavenge()
//    every GORT_SCAVENGE_MS: the warm stacks that stayed below the list's
//    low-water mark since the previous call were not used for a whole period;
//    they are taken out under the lock, their usable range is given back in
//    one batched MADV_DONTNEED outside it, and they join the cold list. So a
//    stack unused for two periods costs no memory; no spawn or exit pays for
//    this. Slabs themselves stay mapped, and so do their page tables unless
//    the kernel reclaims empty ones.
//
// Rejected
//  * One mmap per stack with an mprotect'ed guard page: two mappings per
//    stack, the vm.max_map_count failure other fiber runtimes hit at ~32 000.
//  * Segmented or copied (Go-style) stacks: C++ frames hold raw pointers into
//    the stack, so a stack can never move.
//  * No guard at all: an overflow would silently corrupt the neighbour stack.
//  * MADV_DONTNEED on every freed stack's deep range (what a per-stack trim
//    does): a system call per fiber, though almost no fiber goes deep; in
//    one batched call, still a page-table walk per stack in the kernel.
//  * Asking the kernel which stacks went deep with mincore over the slabs
//    of the freed stacks: one call per run of stacks, but its cost grows
//    with the span's pages, stacks in use included. PAGEMAP_SCAN costs
//    about a hundredth of it per page, and is asked only about runs of
//    fresh stacks; asked at every check, it cost more than reading the
//    mapped sentinels in a steady state (a fan-out repeated on warm
//    stacks). A canary written below the retained top: writing it commits
//    the page it watches.
//  * Unmapping whole free slabs after a peak: a slab is free only when all
//    of its stacks are, which fragmentation makes rare, and the slab table
//    would then need a lock on the overflow report's path.
//
// Invariants
//  * A stack is in exactly one place: a live fiber, a StackCache, the global
//    pool (warm or cold), or, for the length of one scavenge, the scavenger's
//    hands. Reservations (and so slabs) are only unmapped when the runtime
//    stops.
//  * Guard ranges are never madvise(DONTNEED)'d, populated or written.
//  * A stack's sentinel page holds only zeros unless its fiber went below
//    the retained top since the stack was last trimmed or scavenged. Where
//    trim scans page tables, it reads a sentinel only after mapping it
//    (Sentinel::kMapped, or a populate in the same trim).
//  * A run of pages that trim's PAGEMAP_SCAN reports holds only pages of
//    their own (present or swapped) and guard markers, and no guard lies in
//    a deep range: a stack whose deep range it overlaps went deep.
//  * A cold stack has nothing committed; a stack that is not `dirty` was
//    trimmed since its fiber last ran (nothing committed below its retained
//    top, unless a frame skipped the sentinel page: see went_deep).
#pragma once

#include <algorithm>
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <mutex>
#include <vector>

#include "platform.h"

namespace gort::detail {

struct Stack {
  char* base = nullptr;   // lowest address of the reservation (guard starts here)
  std::size_t size = 0;   // whole reservation, guard included
  std::size_t guard = 0;  // bytes of guard at base
  bool dirty = false;     // may have committed pages below the retained top
  // What trim knows of the sentinel page, where it asks the page tables
  // (StackPool::scans_page_tables; see trim in stack.cpp).
  enum class Sentinel : uint8_t {
    kFresh,    // not checked since carved, or since its deep pages or the whole stack went back
    kScanned,  // checked by page-table scans only (`scans` of them): not mapped by the runtime
    kMapped,   // maps the zero page (or a frame): read to check
  };
  Sentinel sentinel = Sentinel::kFresh;
  uint8_t scans = 0;  // page-table scans since the sentinel was last kFresh

  char* top() const { return base + size; }
  char* usable_bottom() const { return base + guard; }
  std::size_t usable() const { return size - guard; }
  explicit operator bool() const { return base != nullptr; }
};

enum class GuardMode { kGuardInstall, kMprotect };
class StackCache;

inline constexpr std::size_t kMinStackSize = 16 * 1024;
inline constexpr std::size_t kDefaultStackSize = 256 * 1024;
inline constexpr std::size_t kMaxStackSize = std::size_t(1) << 30;
inline constexpr std::size_t kGuardBytes = 64 * 1024;
inline constexpr std::size_t kRetainedBytes = 8 * 1024;
inline constexpr int kStacksPerSlab = 128;
inline constexpr int kTrimBatch = 256;
// Checks of a stack by page-table scan before its sentinel is mapped and
// read instead (StackPool::trim). Renting against buying: a scan, paid at
// every check, costs about half of what mapping the sentinel, paid once,
// does, and reading a mapped sentinel costs next to nothing; scanning
// until the scans have cost what the mapping would have, then mapping,
// never costs more than twice the better of the two choices made in
// hindsight, however many times the stack is used.
inline constexpr uint8_t kScansBeforeMapping = 2;
inline constexpr std::size_t kCacheLimit = 512;
inline constexpr std::size_t kIdleCacheKeep = 64;
inline constexpr int64_t kDefaultScavengePeriodNs = 1'000'000'000;  // GORT_SCAVENGE_MS

// Process-wide: slabs and the shared pool. Thread-safe.
class StackPool {
 public:
  StackPool();
  ~StackPool();  // unmaps every slab: no stack may be in use
  StackPool(const StackPool&) = delete;
  StackPool& operator=(const StackPool&) = delete;

  // usable_size is rounded up to whole pages. Throws std::bad_alloc when the
  // kernel refuses the reservation.
  Stack allocate(std::size_t usable_size);
  void release(Stack s);                           // back to the shared pool
  void release_batch(std::vector<Stack>& stacks);  // moves all of them in
  bool take_batch(std::size_t size, std::vector<Stack>& out, std::size_t max);
  // Gives back the deep pages of the dirty stacks among `stacks` (none of
  // them in use) in one batch, and marks them clean. Any thread.
  void trim(Stack* stacks, std::size_t n);
  // Gives back, whole, the warm pool stacks that were not taken since the
  // previous call; returns how many. The monitor's, every scavenge period.
  std::size_t scavenge();

  GuardMode guard_mode() const { return mode_; }
  // Whether trim asks the page tables which stacks went deep (PAGEMAP_SCAN).
  bool scans_page_tables() const { return pagemap_fd_ >= 0; }
  std::size_t slab_count() const;
  // Stacks handed out and not yet released to a cache or the pool: the
  // pool's own count plus every cache's (StackCache::net_). Any thread; a
  // walk under the pool's lock.
  int64_t in_use() const;
  void note_acquired() { in_use_.fetch_add(1, std::memory_order_relaxed); }
  void note_returned() { in_use_.fetch_sub(1, std::memory_order_relaxed); }
  // System calls the stack code has made (mmap, guards, populates,
  // trims, scavenges), for tests and benchmarks. relaxed: a statistic.
  int64_t syscalls() const { return syscalls_.load(std::memory_order_relaxed); }
  std::size_t cold_count() const;  // stacks given back whole, in the pool
  // Stacks carved from the slabs so far, in use or not. Any thread.
  std::size_t carved() const;
  // Bytes of the slabs the kernel holds in memory now (mincore over every
  // slab, in chunks): what the stacks cost, for gort::metrics(). Any
  // thread; its cost grows with the slabs' span, about a bit per page.
  uint64_t committed_bytes() const;
  // Slab i (< slab_count()) as [base, base + stack_size * count), for the
  // fiber dump's walk over every stack (debug.cpp). Any thread: a slab's
  // entry is written before slab_count() publishes it and never again, and
  // its memory stays mapped until the pool is destroyed.
  struct SlabSpan {
    char* base;
    std::size_t stack_size;  // whole reservation per stack, guard included
    int count;
  };
  SlabSpan slab(std::size_t i) const { return SlabSpan{slabs_[i].base, slabs_[i].stack_size, slabs_[i].count}; }

 private:
  struct Slab {
    char* base;
    std::size_t stack_size;  // whole reservation per stack, guard included
    int count;
  };
  struct Range {  // [next, end): reserved address space not yet handed out
    char* next = nullptr;
    char* end = nullptr;
    std::size_t room() const { return std::size_t(end - next); }
  };
  struct FreeList {
    std::size_t stack_size = 0;  // whole reservation, guard included
    // Deques, not vectors: a list that grows to a peak's million stacks
    // adds a block, where a vector would copy the whole array into fresh
    // pages under mu_, past a time slice at a million, holding the
    // freeing fiber's worker and every worker that frees or takes a stack.
    std::deque<Stack> warm;     // may hold committed top pages; taken first, from the back
    std::deque<char*> cold;     // bases of stacks with nothing committed (clean, kGuardBytes)
    std::size_t low_water = 0;  // fewest warm stacks since the last scavenge
    Range reserved;             // reserved address space not yet cut into slabs of this size (slab_space)
    // The rest of a reservation made while another worker's still had room,
    // taken when that one runs out.
    Range spare;
    std::size_t next_reservation_slabs = 1;  // doubles with each reservation
  };
  struct Reservation {  // one mmap; unmapped by the destructor
    char* base;
    std::size_t bytes;
  };
  static constexpr std::size_t kSlabsPerReservation = 32;
  static constexpr std::size_t kMaxReservationBytes = std::size_t(4) << 30;
  Stack carve_slab(std::size_t stack_size);  // without mu_; see stack.cpp
  char* slab_space(std::size_t stack_size, std::size_t bytes);
  void remove_guards(char* base, std::size_t bytes);
  bool install_guards(char* base, std::size_t stack_size);
  void populate_tops(char* base, std::size_t stack_size);
  // The free list of stacks of this whole size (created empty if new).
  FreeList& free_list(std::size_t stack_size);
  std::size_t idle_estimate() const;  // at least as many as scavenge() will take, if called next
  // Warm stacks of the list not taken since the last scavenge (mu_ held).
  static std::size_t idle_count(const FreeList& list) { return std::min(list.low_water, list.warm.size()); }
  static bool take_one(FreeList& list, Stack* out);
  void populate_sentinels(char* base, std::size_t stack_size);
  // /proc/self/pagemap if it takes PAGEMAP_SCAN, else -1 (GORT_STACK_SCAN=0
  // forces that, for testing).
  static int open_pagemap_scan();
  static uint32_t forks();  // times this process is a forked child (stack.cpp)
  // Scans the page tables under each close run of `stacks`, whose
  // sentinels are not mapped (sorted here): appends the deep ones to `deep`
  // and counts a scan for the others; the stacks of no such run go to
  // `unscanned`.
  void scan_unmapped(std::vector<Stack*>& stacks, std::vector<Stack*>& deep, std::vector<Stack*>& unscanned);
  void count_syscalls(int n) { syscalls_.fetch_add(n, std::memory_order_relaxed); }
  friend class StackCache;  // registers itself, for in_use()
  void add_cache(const StackCache* c);
  void remove_cache(const StackCache* c, int64_t net);

  GuardMode mode_;
  bool one_slab_per_reservation_;  // vm.overcommit_memory=2: see slab_space
  int pagemap_fd_;                 // for PAGEMAP_SCAN (trim), or -1
  uint32_t pagemap_forks_;         // forks() when it was opened: it describes that process
  mutable std::mutex mu_;
  std::vector<FreeList> free_;             // by stack size; guarded by mu_
  std::vector<const StackCache*> caches_;  // every live cache, for in_use(); guarded by mu_
  std::vector<Reservation> reservations_;  // every mmap of slabs; guarded by mu_
  // Every slab, for the fiber dump's walk and committed_bytes (append-only).
  static constexpr int kMaxSlabs = 1 << 16;
  Slab* slabs_;  // kMaxSlabs entries
  std::atomic<int> nslabs_{0};
  std::atomic<int64_t> in_use_{0};  // stacks the pool itself handed out, net
  std::atomic<int64_t> syscalls_{0};
};

std::size_t round_stack_size(std::size_t usable_size);

// A worker's private stack cache: only its owner touches it.
class StackCache {
 public:
  StackCache(StackPool* pool, std::size_t default_usable)
      : pool_(pool), default_request_(default_usable), default_size_(round_stack_size(default_usable)) {
    pool_->add_cache(this);
  }
  ~StackCache() {
    flush();
    pool_->remove_cache(this, net());
  }
  StackCache(const StackCache&) = delete;
  StackCache& operator=(const StackCache&) = delete;
  Stack get(std::size_t usable_size);
  // A cached stack of this size, if there is one: no lock, no system call.
  bool try_get(std::size_t usable_size, Stack* out) {
    if (usable_size != default_request_ || cache_.empty()) return false;
    *out = cache_.back();
    cache_.pop_back();
    count(+1);
    return true;
  }
  void put(const Stack& s);  // its fiber ran on it: marked dirty
  void trim();               // returns the deep pages of every dirty cached stack
  // Going idle: trims, and keeps only the newest kIdleCacheKeep stacks; the
  // rest go to the pool, where the scavenger can reach them.
  void shrink_when_idle();
  void flush();  // everything back to the pool
  // Stacks this cache handed out minus those returned to it (negative on
  // a worker that frees more fibers than it spawns). Any thread.
  int64_t net() const { return net_.load(std::memory_order_relaxed); }

 private:
  // Only the owner writes net_, so a load and a store do, with no locked
  // instruction: a fan-out gets on one worker and puts on another, and a
  // shared count would move a cache line between them on every fiber.
  // relaxed: a statistic. A reader that needs it exact (the leak checks)
  // first acquires something the owner released after its last count:
  // its worker's exit count (Worker::exited), released after every exit
  // has put its stack back, or the owner thread's join.
  void count(int64_t d) { net_.store(net_.load(std::memory_order_relaxed) + d, std::memory_order_relaxed); }

  StackPool* pool_;
  std::vector<Stack> cache_;     // stacks of the default size only; others go to the pool
  std::size_t default_request_;  // the size asked for by default (before rounding)
  std::size_t default_size_;     // usable size of the stacks this cache keeps
  int frees_since_trim_ = 0;
  std::atomic<int64_t> net_{0};
};

}  // namespace gort::detail
