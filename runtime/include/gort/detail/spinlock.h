// spinlock.h (public only because Mutex and friends embed one): the lock that guards the runtime's wait queues and
// timer heaps.
//
// Critical sections under it are a handful of pointer updates and never
// park, so spinning beats a futex round trip. On this shared 2-core machine a
// lock holder can be preempted, so after a bounded spin the waiter yields the
// CPU (sched_yield) instead of burning its time slice.
//
// A waiter looks at the lock less and less often (exponential backoff, up
// to kMaxBackoff pauses between looks, as Go's lock2 pauses 30 times
// between looks). A lock that two cores take in turn on every operation
// (a channel both workers send to and receive from) moves its cache line,
// and the guarded data's, from core to core each time; a waiter that
// backs off lets the holder's core take the lock again while the data is
// still in its cache, and the pair does many operations per transfer
// instead of one.
//
// Invariant: never held across a fiber switch. A fiber that parks while
// "holding" a spinlock hands its release to park()'s unlock step, which runs
// on the scheduler after the fiber has stopped (see park.h).
#pragma once

#include <sched.h>

#include <atomic>

#include <gort/detail/annotations.h>

namespace gort::detail {

inline void spin_pause() {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#elif defined(__aarch64__)
  asm volatile("yield");
#endif
}

class GORT_CAPABILITY("mutex") Spinlock {
 public:
  void lock() GORT_ACQUIRE() {
    // acquire: pairs with the release in unlock(), so the previous holder's
    // writes to the guarded data are visible to us.
    if (__builtin_expect(!locked_.exchange(true, std::memory_order_acquire), 1)) return;
    lock_contended();
  }
  bool try_lock() GORT_TRY_ACQUIRE(true) {
    return !locked_.load(std::memory_order_relaxed) && !locked_.exchange(true, std::memory_order_acquire);
  }
  // release: pairs with the acquire in lock(). This store is the last access a
  // releaser makes to the lock; structures may be freed by the next holder.
  void unlock() GORT_RELEASE() { locked_.store(false, std::memory_order_release); }

 private:
  static constexpr int kMaxBackoff = 64;   // most pauses between two looks at the lock
  static constexpr int kSpinBudget = 256;  // pauses before yielding the CPU instead

  // Out of line: the uncontended lock() stays one exchange wherever it is
  // inlined.
  __attribute__((noinline)) void lock_contended() GORT_NO_THREAD_SAFETY_ANALYSIS {
    int backoff = 1, paused = 0;
    for (;;) {
      while (locked_.load(std::memory_order_relaxed)) {
        if (paused < kSpinBudget) {
          for (int i = 0; i < backoff; ++i) spin_pause();
          paused += backoff;
          if (backoff < kMaxBackoff) backoff *= 2;
        } else {
          sched_yield();
        }
      }
      // acquire: as in lock().
      if (!locked_.exchange(true, std::memory_order_acquire)) return;
    }
  }

  std::atomic<bool> locked_{false};
};

// Scoped holder of a Spinlock that clang's thread-safety analysis understands
// (std::lock_guard is not annotated in libstdc++).
class GORT_SCOPED_CAPABILITY SpinGuard {
 public:
  explicit SpinGuard(Spinlock& l) GORT_ACQUIRE(l) : lock_(l) { lock_.lock(); }
  ~SpinGuard() GORT_RELEASE() { lock_.unlock(); }
  SpinGuard(const SpinGuard&) = delete;
  SpinGuard& operator=(const SpinGuard&) = delete;

 private:
  Spinlock& lock_;
};

}  // namespace gort::detail
