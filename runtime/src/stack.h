// stack.h: fiber stacks — reserved, lazily committed, guarded, pooled.
//
// Design
//  * A stack is a range of virtual memory [base, base + size). Its lowest
//    `guard` bytes are a guard region; the fiber runs on the rest, growing down
//    from base + size. The kernel commits a page only when it is first touched,
//    so a fiber that uses little stack costs about one page of memory however
//    large its reservation.
//  * Stacks are carved from slabs: one mmap(MAP_NORESERVE) holds kStacksPerSlab
//    stacks of one size. Each stack's guard is installed with
//    madvise(MADV_GUARD_INSTALL) (Linux >= 6.13), which marks page-table
//    entries and does NOT split the mapping: 100 000 stacks cost ~1 600
//    mappings, far under vm.max_map_count (65 530). On older kernels the guard
//    falls back to mprotect(PROT_NONE), which splits the slab into two mappings
//    per stack (the limit is then ~32 000 live fibers); GORT_GUARD=mprotect
//    forces that mode for testing.
//  * Freed stacks go to the freeing worker's StackCache (no locks), which
//    overflows half of itself to the global pool. A stack that comes back may
//    have touched deep pages; the cache returns everything below the top
//    kRetainedBytes to the kernel (MADV_DONTNEED) in batches, every
//    kTrimBatch frees and whenever the worker goes idle, so one deep recursion
//    does not stay resident. Batching keeps the madvise syscall off the
//    spawn/exit fast path.
//
// Rejected
//  * One mmap per stack with an mprotect'ed guard page: two mappings per
//    stack, the vm.max_map_count failure other fiber runtimes hit at ~32 000.
//  * Segmented or copied (Go-style) stacks: C++ frames hold raw pointers into
//    the stack, so a stack can never move.
//  * No guard at all: an overflow would silently corrupt the neighbour stack.
//
// Invariants
//  * A stack is in exactly one place: a live fiber, a StackCache, or the global
//    pool. Slabs are only unmapped when the runtime stops.
//  * Guard ranges are never madvise(DONTNEED)'d or written.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <mutex>
#include <vector>

namespace gort::detail {

struct Stack {
  char* base = nullptr;     // lowest address of the reservation (guard starts here)
  std::size_t size = 0;     // whole reservation, guard included
  std::size_t guard = 0;    // bytes of guard at base
  bool dirty = false;       // may have committed pages below the retained top

  char* top() const { return base + size; }
  char* usable_bottom() const { return base + guard; }
  std::size_t usable() const { return size - guard; }
  explicit operator bool() const { return base != nullptr; }
};

enum class GuardMode { kGuardInstall, kMprotect };

inline constexpr std::size_t kMinStackSize = 16 * 1024;
inline constexpr std::size_t kDefaultStackSize = 256 * 1024;
inline constexpr std::size_t kMaxStackSize = std::size_t(1) << 30;
inline constexpr std::size_t kGuardBytes = 64 * 1024;
inline constexpr std::size_t kRetainedBytes = 8 * 1024;
inline constexpr int kStacksPerSlab = 64;
inline constexpr int kTrimBatch = 256;
inline constexpr std::size_t kCacheLimit = 512;

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
  void release(Stack s);              // back to the shared pool
  void release_batch(std::vector<Stack>& stacks);  // moves all of them in
  bool take_batch(std::size_t size, std::vector<Stack>& out, std::size_t max);

  GuardMode guard_mode() const { return mode_; }
  std::size_t slab_count() const;
  // Stacks handed out and not yet released to a cache or the pool.
  int64_t in_use() const { return in_use_.load(std::memory_order_relaxed); }
  void note_acquired() { in_use_.fetch_add(1, std::memory_order_relaxed); }
  void note_returned() { in_use_.fetch_sub(1, std::memory_order_relaxed); }


 private:
  struct Slab {
    char* base;
    std::size_t stack_size;   // whole reservation per stack, guard included
    int count;
  };
  void add_slab(std::size_t stack_size);
  // The free list of stacks of this whole size (created empty if new).
  std::vector<Stack>& free_list(std::size_t stack_size);

  GuardMode mode_;
  mutable std::mutex mu_;
  std::vector<std::pair<std::size_t, std::vector<Stack>>> free_;  // by stack size; guarded by mu_
  // Every slab, for unmapping at shutdown (append-only).
  static constexpr int kMaxSlabs = 1 << 16;
  Slab* slabs_;                          // kMaxSlabs entries
  std::atomic<int> nslabs_{0};
  std::atomic<int64_t> in_use_{0};
};

std::size_t round_stack_size(std::size_t usable_size);

// A worker's private stack cache: only its owner touches it.
class StackCache {
 public:
  StackCache(StackPool* pool, std::size_t default_usable)
      : pool_(pool), default_size_(round_stack_size(default_usable)) {}
  ~StackCache() { flush(); }
  Stack get(std::size_t usable_size);
  void put(Stack s);
  void trim();   // returns the deep pages of every dirty cached stack
  void flush();  // everything back to the pool

 private:
  StackPool* pool_;
  std::vector<Stack> cache_;  // stacks of the default size only; others go to the pool
  std::size_t default_size_;    // usable size of the stacks this cache keeps
  int frees_since_trim_ = 0;
};

// Returns the deep pages of one stack to the kernel (keeps the top kRetainedBytes).
void trim_stack(Stack& s);

}  // namespace gort::detail
