// park.cpp: wait queues and the block/wake pair built on park/ready, plus
// sleeping. See park.h and <gort/detail/wait_queue.h>.
#include "park.h"

#include <thread>

#include <gort/detail/wait_queue.h>
#include <gort/runtime.h>
#include <gort/time.h>

#include "platform.h"
#include "scheduler.h"

namespace gort::detail {

void WaitQueue::push_back(Waiter* w) {
  GORT_CHECK(!w->queued);
  w->queued = true;
  w->next = nullptr;
  w->prev = tail_;
  if (tail_) {
    tail_->next = w;
  } else {
    head_ = w;
  }
  tail_ = w;
}

Waiter* WaitQueue::pop_front() {
  Waiter* w = head_;
  if (w) remove(w);
  return w;
}

void WaitQueue::remove(Waiter* w) {
  GORT_CHECK(w->queued);
  if (w->prev) {
    w->prev->next = w->next;
  } else {
    head_ = w->next;
  }
  if (w->next) {
    w->next->prev = w->prev;
  } else {
    tail_ = w->prev;
  }
  w->next = w->prev = nullptr;
  w->queued = false;
}

void prepare_wait(Waiter* w) {
  w->fiber = current_fiber();
  w->signaled.store(0, std::memory_order_relaxed);
}

// park()'s unlock step for block(): releases a lock the parked fiber took.
static bool unlock_spinlock(void* lock) GORT_NO_THREAD_SAFETY_ANALYSIS {
  static_cast<Spinlock*>(lock)->unlock();
  return true;
}

void block(Waiter* w, Spinlock& lock) GORT_NO_THREAD_SAFETY_ANALYSIS {
  if (w->fiber != nullptr) {
    // The lock is released by the worker after the switch (park.h).
    park(&unlock_spinlock, &lock);
    return;
  }
  // A plain thread: the futex word closes the window between unlock and sleep.
  lock.unlock();
  // acquire: pairs with wake()'s release; the waker's writes are visible.
  while (w->signaled.load(std::memory_order_acquire) == 0) futex_wait(&w->signaled, 0, kNever);
}

void wake(Waiter* w) {
  if (w->fiber != nullptr) {
    ready(w->fiber);
    return;
  }
  // After this store the waiter may return and free w; futex_wake on a
  // stale address only causes a spurious wake-up elsewhere, which every
  // futex user tolerates.
  w->signaled.store(1, std::memory_order_release);
  futex_wake(&w->signaled, 1);
}

namespace {

struct SleepTimer : TimerNode {
  Fiber* fiber;
};

}  // namespace

void sleep_until_ns(int64_t deadline) {
  Fiber* self = current_fiber();
  if (self == nullptr) {
    int64_t now = now_ns();
    if (deadline > now) std::this_thread::sleep_for(std::chrono::nanoseconds(deadline - now));
    return;
  }
  if (deadline <= now_ns()) {
    gort::yield();
    return;
  }
  SleepTimer t;
  t.when = deadline;
  t.fiber = self;
  // fire() readies the fiber as its last access to the node, which lives on
  // the sleeping fiber's stack.
  t.fire = [](TimerNode* n) { ready(static_cast<SleepTimer*>(n)->fiber); };
  park([](void* arg) {
    auto* timer = static_cast<SleepTimer*>(arg);
    int64_t when = timer->when;
    Worker* w = current_worker();
    // After add() the timer may fire on another worker at once: use `when`,
    // not timer->when, below.
    if (w->timers.add(timer)) w->sched->wake_worker_for_timer(when);
    return true;
  }, &t);
}

int64_t to_monotonic_ns(Clock::time_point t) {
  // steady_clock is CLOCK_MONOTONIC on Linux (libstdc++ and libc++).
  return std::chrono::duration_cast<std::chrono::nanoseconds>(t.time_since_epoch()).count();
}

}  // namespace gort::detail
