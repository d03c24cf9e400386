// mutex.h: gort::Mutex — a mutual-exclusion lock that parks the fiber, never
// the worker. Meets the Lockable requirements, so std::lock_guard and
// std::unique_lock work. Usable from plain threads too (they block).
//
// Uncontended lock/unlock is one CAS each. Under contention waiters queue in
// FIFO order and unlock hands the lock directly to the first waiter, so no
// waiter starves (Go's "starvation mode", always on).
#pragma once

#include <atomic>
#include <cstdint>

#include <gort/detail/preempt.h>
#include <gort/detail/wait_queue.h>

namespace gort {

class GORT_CAPABILITY("mutex") Mutex {
 public:
  Mutex() = default;
  Mutex(const Mutex&) = delete;
  Mutex& operator=(const Mutex&) = delete;
  ~Mutex();  // fatal if locked or waited on

  void lock() GORT_ACQUIRE() {
    // A lock that is free does not park: the time slice is checked here,
    // before taking it, so a preempted fiber does not hold it meanwhile.
    detail::preemption_point();
    uint32_t expected = 0;
    // acquire: pairs with unlock's release; the previous holder's writes are visible.
    if (!state_.compare_exchange_strong(expected, kLocked, std::memory_order_acquire, std::memory_order_relaxed))
      lock_slow();
  }
  bool try_lock() GORT_TRY_ACQUIRE(true) {
    uint32_t expected = 0;
    return state_.compare_exchange_strong(expected, kLocked, std::memory_order_acquire, std::memory_order_relaxed);
  }
  void unlock() GORT_RELEASE() {
    uint32_t expected = kLocked;
    // release: pairs with lock's acquire.
    if (!state_.compare_exchange_strong(expected, 0, std::memory_order_release, std::memory_order_relaxed))
      unlock_slow();
  }

 private:
  static constexpr uint32_t kLocked = 1;   // held
  static constexpr uint32_t kWaiters = 2;  // waiters_ non-empty: unlock must hand off
  void lock_slow();
  void unlock_slow();

  std::atomic<uint32_t> state_{0};  // kLocked | kWaiters
  detail::Spinlock wait_lock_;      // guards waiters_ and the kWaiters bit
  detail::WaitQueue waiters_;
};

}  // namespace gort
