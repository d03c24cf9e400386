// park.cpp: park/ready (the switch itself is switch_out, scheduler.h), the
// block/wake pair of wait queues built on them, and sleeping. See park.h and
// <gort/detail/wait_queue.h>.
#include "park.h"

#include <thread>

#include <gort/detail/wait_queue.h>
#include <gort/runtime.h>
#include <gort/time.h>

#include "platform.h"
#include "scheduler.h"

namespace gort::detail {

void wait_queue_misuse(const char* what) { fatal("runtime invariant violated: WaitQueue %s", what); }

void prepare_wait(Waiter* w) {
  Worker* wk = current_worker();
  w->worker = wk;
  w->fiber =
      wk != nullptr ? wk->current.load(std::memory_order_relaxed) : nullptr;  // null on a worker's own stack, too
  w->signaled.store(0, std::memory_order_relaxed);
}

void block(Waiter* w, Spinlock& lock, WaitReason why) GORT_NO_THREAD_SAFETY_ANALYSIS {
  if (w->fiber != nullptr) {
    // The lock is released by the worker after the switch (park.h). The
    // fiber has not switched since prepare_wait: w->worker is still its worker.
    park_releasing(w->worker, lock, why);
    return;
  }
  // A plain thread: the futex word closes the window between unlock and sleep.
  lock.unlock();
  // acquire: pairs with wake()'s release; the waker's writes are visible.
  while (w->signaled.load(std::memory_order_acquire) == 0) futex_wait(&w->signaled, 0, kNever);
}

// ---- park/ready ----

namespace {

// Both ways of parking refuse to from inside on_worker_stack (worker_stack.h).
__attribute__((always_inline)) inline void check_may_park(Worker* w) {
  if (__builtin_expect(w->own.in_worker_stack, 0))
    fatal("a fiber blocked inside gort::on_worker_stack (only non-blocking work may run there)");
}

}  // namespace

void park_on(Worker* w, WaitReason why, bool (*unlock)(void*), void* arg) {
  check_may_park(w);
  Fiber* self = w->current.load(std::memory_order_relaxed);
  self->note_wait(why);
  SwitchRequest req{SwitchRequest::kPark, unlock, arg};
  switch_out<SwitchRequest::kPark>(w, self, &req);
}

void park(WaitReason why, bool (*unlock)(void*), void* arg) { park_on(current_worker(), why, unlock, arg); }

void park_releasing(Worker* w, Spinlock& lock, WaitReason why) GORT_NO_THREAD_SAFETY_ANALYSIS {
  check_may_park(w);
  Fiber* self = w->current.load(std::memory_order_relaxed);
  self->note_wait(why);
  SwitchRequest req{SwitchRequest::kParkReleasing, nullptr, &lock};
  switch_out<SwitchRequest::kParkReleasing>(w, self, &req);
}

void ready(Fiber* f) {
  f->claim_for_ready();
  // Like Go's goready: the woken fiber runs next on this worker, while the
  // data it was handed is still in cache. A worker thread belongs to the one
  // running scheduler (tls_worker is set only inside its loop), so w->sched
  // needs no check against current_scheduler(). This is Scheduler::ready's
  // worker branch, inlined: a call would add its frame to every wake-up.
  if (Worker* w = current_worker(); __builtin_expect(w != nullptr, 1)) {
    if (w->push_local(f, RunNext::kYes)) w->sched->wake_idle_worker();
    return;
  }
  Scheduler* s = current_scheduler();
  GORT_CHECK(s != nullptr);
  s->ready(f, RunNext::kYes);
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
  park(
      WaitReason::kSleep,
      [](void* arg) {
        auto* timer = static_cast<SleepTimer*>(arg);
        int64_t when = timer->when;
        Worker* w = current_worker();
        // After add() the timer may fire on another worker at once: use `when`,
        // not timer->when, below.
        if (w->timers.add(timer)) w->sched->wake_worker_for_timer(when);
        return true;
      },
      &t);
}

int64_t to_monotonic_ns(Clock::time_point t) {
  // steady_clock is CLOCK_MONOTONIC on Linux (libstdc++ and libc++).
  return std::chrono::duration_cast<std::chrono::nanoseconds>(t.time_since_epoch()).count();
}

}  // namespace gort::detail
