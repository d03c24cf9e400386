// condvar.h: gort::CondVar, a condition variable for gort::Mutex.
// Waiting parks the fiber; notify wakes waiters in FIFO order.
#pragma once

#include <mutex>

#include <gort/detail/wait_queue.h>
#include <gort/mutex.h>

namespace gort {

class CondVar {
 public:
  CondVar() = default;
  CondVar(const CondVar&) = delete;
  CondVar& operator=(const CondVar&) = delete;
  ~CondVar();  // fatal if fibers still wait on it

  // Atomically unlocks lk's mutex and waits; relocks before returning. May
  // return spuriously only in the sense of std::condition_variable: use the
  // predicate form unless you re-check yourself.
  void wait(std::unique_lock<Mutex>& lk);
  template <class Pred>
  void wait(std::unique_lock<Mutex>& lk, Pred pred) {
    while (!pred()) wait(lk);
  }
  void notify_one();
  // Wakes every waiter, taking them off and waking them with a preemption
  // point every few hundred (it may yield and resume on another thread
  // when it releases many). A fiber that starts waiting while it runs may
  // be woken too (a spurious wake-up: wait with a predicate).
  void notify_all();

 private:
  detail::Spinlock lock_;
  detail::WaitQueue waiters_;
};

}  // namespace gort
