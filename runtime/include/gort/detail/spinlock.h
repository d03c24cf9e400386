// spinlock.h (public only because Mutex and friends embed one): the lock that guards the runtime's wait queues and
// timer heaps.
//
// Critical sections under it are a handful of pointer updates and never
// park, so spinning beats a futex round trip. On this shared 2-core machine a
// lock holder can be preempted, so after a bounded spin the waiter yields the
// CPU (sched_yield) instead of burning its time slice.
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
    for (int spins = 0;; ++spins) {
      // acquire: pairs with the release in unlock(), so the previous holder's
      // writes to the guarded data are visible to us.
      if (!locked_.exchange(true, std::memory_order_acquire)) return;
      while (locked_.load(std::memory_order_relaxed)) {
        if (++spins < 64) {
          spin_pause();
        } else {
          sched_yield();
        }
      }
    }
  }
  bool try_lock() GORT_TRY_ACQUIRE(true) {
    return !locked_.load(std::memory_order_relaxed) && !locked_.exchange(true, std::memory_order_acquire);
  }
  // release: pairs with the acquire in lock(). This store is the last access a
  // releaser makes to the lock; structures may be freed by the next holder.
  void unlock() GORT_RELEASE() { locked_.store(false, std::memory_order_release); }

 private:
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
