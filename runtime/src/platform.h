// platform.h: small Linux facilities the runtime is built on: futex, clock,
// CPU relax, fatal errors, advice for many memory ranges in one call.
//
// Nothing here knows about fibers; everything above uses these instead of
// calling the kernel directly, so there is one place to port.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <ctime>
#include <vector>

// The sanitizer switches (GORT_SANITIZER_BUILD, GORT_ASAN, GORT_TSAN) are
// compile definitions set by the top CMakeLists.txt from GORT_SANITIZE.

#include <gort/detail/annotations.h>

namespace gort::detail {

// Monotonic time in nanoseconds (CLOCK_MONOTONIC, vDSO: no syscall).
inline int64_t now_ns() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return int64_t(ts.tv_sec) * 1'000'000'000 + ts.tv_nsec;
}
inline constexpr int64_t kNever = INT64_MAX;

// The CPU's cycle counter, for the time a fiber's wait began (fiber.h):
// one instruction (rdtsc; on AArch64 the virtual counter), where now_ns()
// is a vDSO call that reads the same counter and then scales it under a
// sequence lock. The park path stores the raw count; whoever wants
// nanoseconds converts when it reads (debug.cpp's TickClock), which is
// rare. Linux uses the counter as its clock source only when it is
// invariant (constant rate, in step across CPUs), which is what the
// conversion needs; where it is not, elapsed times in the dump are
// approximate, and nothing else depends on them.
inline uint64_t cpu_ticks() {
#if defined(__x86_64__) || defined(__i386__)
  return __builtin_ia32_rdtsc();
#elif defined(__aarch64__)
  uint64_t v;
  asm volatile("mrs %0, cntvct_el0" : "=r"(v));
  return v;
#else
  return uint64_t(now_ns());
#endif
}

// futex on a 32-bit word. wait() returns when woken, on timeout (deadline_ns is
// CLOCK_MONOTONIC, kNever for none), on a spurious wake-up, or at once if the
// word no longer holds `expected`: callers always re-check their condition.
void futex_wait(std::atomic<uint32_t>* word, uint32_t expected, int64_t deadline_ns);
void futex_wake(std::atomic<uint32_t>* word, int count);
// Sleeps until *word is non-zero (acquire: the setter's writes are visible)
// or deadline_ns (kNever: no deadline) has passed: the wait loop every
// "set the word, then futex_wake" pair needs.
inline void futex_wait_until_set(std::atomic<uint32_t>* word, int64_t deadline_ns) {
  while (word->load(std::memory_order_acquire) == 0) {
    if (deadline_ns != kNever && now_ns() >= deadline_ns) return;
    futex_wait(word, 0, deadline_ns);
  }
}

// Prints "fatal error: <msg>" to stderr and exits with status 2, like Go's
// runtime.throw. Never returns. Not for signal handlers (it flushes stdio).
[[noreturn]] void fatal(const char* fmt, ...) __attribute__((format(printf, 1, 2)));
// The same, followed by a blank line and `detail` (a fiber dump, say).
[[noreturn]] void fatal_with(const char* detail, const char* fmt, ...) __attribute__((format(printf, 2, 3)));

// Always-on invariant check: the runtime's internal consistency is not
// something to trade for speed in release builds.
#define GORT_CHECK(cond)                                                                          \
  do {                                                                                            \
    if (__builtin_expect(!(cond), 0))                                                             \
      ::gort::detail::fatal("runtime invariant violated: %s (%s:%d)", #cond, __FILE__, __LINE__); \
  } while (0)

std::size_t page_size();

// Under ASan, marks [p, p + n) addressable: memory from a fresh mmap may lie
// where an earlier mapping was unmapped with its shadow still poisoned (a
// stack slab's dead frames' redzones: munmap does not clear them), so
// objects constructed in reserved memory start from a clean shadow. A no-op
// in other builds.
void unpoison_fresh_memory(void* p, std::size_t n);

// Gives the C allocator's free memory back to the kernel: every whole free
// page in the middle of its heaps as well as at their ends (glibc's
// malloc_trim(0); nothing elsewhere). The allocator keeps freed memory for
// reuse and returns only a heap's top past a threshold, so after a peak the
// blocks a thousand connections freed stay resident among the few that
// live on. It locks each arena while it walks its free lists: a caller's
// cost, not a per-allocation one.
void release_free_heap_memory();

// madvise(2) advice for many ranges of this process's memory in as few
// system calls as the kernel allows: process_madvise(2) on the process
// itself (the PIDFD_SELF sentinel: no descriptor, so a forked child advises
// its own memory), which accepts every advice since Linux 6.13 and the
// sentinel since 6.15, up to IOV_MAX ranges per call. Where the kernel
// refuses (detected once, at the first batch; GORT_MADVISE=single forces
// it), one madvise(2) per range.
// Not thread-safe: one batch belongs to one thread at a time.
class MadviseBatch {
 public:
  static constexpr int kMaxRanges = 1024;  // IOV_MAX on Linux
  explicit MadviseBatch(int advice) : advice_(advice) {}
  ~MadviseBatch() { flush(); }
  MadviseBatch(const MadviseBatch&) = delete;
  MadviseBatch& operator=(const MadviseBatch&) = delete;
  // Queues [addr, addr + len); a full batch is flushed first.
  void add(void* addr, std::size_t len);
  // Advises every queued range. False if the kernel refused any of them
  // (the others may have been advised).
  bool flush();
  int syscalls() const { return syscalls_; }  // made so far by this batch
  // True when this kernel takes a batch in one call (probed once).
  static bool batched();

 private:
  struct Range {  // laid out as struct iovec
    void* base;
    std::size_t len;
  };
  int advice_;
  int syscalls_ = 0;
  bool failed_ = false;
  // On the heap: batches are built on fiber stacks too (a dead fiber's
  // stack is cached on top of the next fiber's), which may be 16 KiB.
  std::vector<Range> ranges_;
};

}  // namespace gort::detail
