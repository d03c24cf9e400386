// sync.cpp: Mutex, CondVar and WaitGroup, all on the wait-queue protocol of
// <gort/detail/wait_queue.h>: lock, enqueue, block (unlock after switching
// out) / lock, dequeue, unlock, wake.
//
// Lock order: CondVar::lock_ before Mutex::wait_lock_ (CondVar::wait unlocks
// the user's mutex while queued). Nothing takes them the other way round.
#include <gort/condvar.h>
#include <gort/mutex.h>
#include <gort/waitgroup.h>

#include "platform.h"

namespace gort {

using detail::Waiter;

// ---- Mutex ----

Mutex::~Mutex() {
  if (state_.load(std::memory_order_relaxed) & kWaiters)
    detail::fatal("gort::Mutex destroyed while fibers wait for it");
}

void Mutex::lock_slow() GORT_NO_THREAD_SAFETY_ANALYSIS {  // wait_lock_ is released by block()
  // A short spin first: critical sections are often shorter than a park.
  for (int i = 0; i < 32; ++i) {
    if (try_lock()) return;
    detail::spin_pause();
  }
  Waiter w;
  detail::prepare_wait(&w);
  wait_lock_.lock();
  for (;;) {
    uint32_t s = state_.load(std::memory_order_relaxed);
    if (!(s & kLocked)) {
      // acquire: as in lock().
      if (state_.compare_exchange_weak(s, s | kLocked, std::memory_order_acquire, std::memory_order_relaxed)) {
        wait_lock_.unlock();
        return;
      }
      continue;
    }
    // Setting kWaiters (under wait_lock_) sends the holder's unlock to the
    // slow path, which takes wait_lock_ and so finds us queued.
    if ((s & kWaiters) || state_.compare_exchange_weak(s, s | kWaiters, std::memory_order_relaxed)) break;
  }
  waiters_.push_back(&w);
  detail::block(&w, wait_lock_, detail::WaitReason::kMutex);
  // unlock_slow handed the lock to us: kLocked was never cleared.
}

void Mutex::unlock_slow() {
  wait_lock_.lock();
  Waiter* w = waiters_.pop_front();
  if (w == nullptr) {
    // release: as in unlock().
    state_.store(0, std::memory_order_release);
    wait_lock_.unlock();
    return;
  }
  // Hand-off: stay locked, now on w's behalf; clear kWaiters if it was the
  // last. The hand-off is ordered by wait_lock_ and the run queue that
  // carries w to its worker.
  if (waiters_.empty()) state_.store(kLocked, std::memory_order_release);
  wait_lock_.unlock();
  detail::wake(w);
}

// ---- CondVar ----

CondVar::~CondVar() {
  lock_.lock();
  bool waited_on = !waiters_.empty();
  lock_.unlock();
  if (waited_on) detail::fatal("gort::CondVar destroyed while fibers wait on it");
}

void CondVar::wait(std::unique_lock<Mutex>& lk) GORT_NO_THREAD_SAFETY_ANALYSIS {
  if (!lk.owns_lock()) detail::fatal("gort::CondVar::wait: the lock is not held");
  Waiter w;
  detail::prepare_wait(&w);
  lock_.lock();
  waiters_.push_back(&w);
  // Unlock the user's mutex only once queued: a notify from here on finds us.
  lk.unlock();
  detail::block(&w, lock_, detail::WaitReason::kCondVar);
  lk.lock();
}

void CondVar::notify_one() {
  lock_.lock();
  Waiter* w = waiters_.pop_front();
  lock_.unlock();
  if (w) detail::wake(w);
}

void CondVar::notify_all() {
  // Take everyone off under the lock, a batch per hold with a preemption
  // point between holds, and wake them after the last hold (WaiterChain).
  // A fiber that starts waiting between two holds is taken off too: a
  // wake-up it did not need, which every CondVar waiter tolerates, and the
  // taking ends, since those taken stay parked until the last hold.
  detail::WaiterChain chain;
  lock_.lock();
  chain.take_preemptibly(lock_, [&] { return waiters_.pop_front(); });
  lock_.unlock();
  chain.wake_all_preemptibly();
}

// ---- WaitGroup ----

void WaitGroup::add(int64_t delta) {
  if (delta > INT32_MAX || delta < -int64_t(INT32_MAX))
    detail::fatal("gort::WaitGroup::add(%lld): delta out of range", (long long)delta);
  // acq_rel: release publishes this fiber's work to wait()'s acquire; acquire
  // makes the other adders' work visible to the one that releases waiters.
  uint64_t inc = uint64_t(delta) << 32;
  uint64_t s = state_.fetch_add(inc, std::memory_order_acq_rel) + inc;
  auto counter = int32_t(s >> 32);
  auto nwaiters = uint32_t(s);
  if (counter < 0) detail::fatal("sync: negative WaitGroup counter");
  if (counter > 0 || nwaiters == 0) return;
  // The counter reached zero with waiters registered. They cannot return
  // until released, and new wait() calls see zero and return at once.
  // They are taken off a batch per lock hold, with a preemption point
  // between holds (as in CondVar::notify_all), and woken after the last.
  // Between holds a waiter registered earlier may queue itself: a later
  // batch takes it. None of them has been woken, so none can destroy the
  // WaitGroup meanwhile.
  state_.store(0, std::memory_order_relaxed);
  detail::WaiterChain chain;
  lock_.lock();
  for (uint32_t i = 0; i < nwaiters; ++i) {
    // Its own loop, not WaiterChain::take_preemptibly: nwaiters bounds the
    // taking, and this release (of one waiter, mostly) is on every
    // spawn-and-wait path, where the loop compiles to fewer instructions.
    if (i != 0 && i % detail::WaiterChain::kWakeBatch == 0) detail::WaiterChain::between_holds(lock_);
    Waiter* w = waiters_.pop_front();
    if (w == nullptr) {
      // Registered in state_ but not queued yet: each will find a permit.
      released_ += nwaiters - i;
      break;
    }
    chain.append(w);
  }
  lock_.unlock();
  chain.wake_all_preemptibly();
}

void WaitGroup::wait() GORT_NO_THREAD_SAFETY_ANALYSIS {
  uint64_t s = state_.load(std::memory_order_acquire);
  for (;;) {
    if ((s >> 32) == 0) return;
    // Register as a waiter in the same word as the counter.
    if (state_.compare_exchange_weak(s, s + 1, std::memory_order_acq_rel, std::memory_order_acquire)) break;
  }
  Waiter w;
  detail::prepare_wait(&w);
  lock_.lock();
  if (released_ > 0) {
    --released_;
    lock_.unlock();
    return;
  }
  waiters_.push_back(&w);
  detail::block(&w, lock_, detail::WaitReason::kWaitGroup);
}

}  // namespace gort
