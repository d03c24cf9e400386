// platform.h: small Linux facilities the runtime is built on: futex, clock,
// CPU relax, fatal errors.
//
// Nothing here knows about fibers; everything above uses these instead of
// calling the kernel directly, so there is one place to port.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <ctime>

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

// Always-on invariant check: the runtime's internal consistency is not
// something to trade for speed in release builds.
#define GORT_CHECK(cond)                                                              \
  do {                                                                                \
    if (__builtin_expect(!(cond), 0))                                                 \
      ::gort::detail::fatal("runtime invariant violated: %s (%s:%d)", #cond, __FILE__, \
                            __LINE__);                                                \
  } while (0)

std::size_t page_size();

}  // namespace gort::detail
