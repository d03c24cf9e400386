// timer.cpp: the runtime-owned timers behind gort::after, Timer, Ticker,
// after_func and Context deadlines (one implementation, as Go's runtime has
// one timer for time.After, Timer, Ticker, AfterFunc and context), on the
// workers' TimerHeaps.
//
// Design
//  * A TimerCore is a TimerNode with a lock, a reference count and what to
//    do when it fires: send the time on its channel without blocking (the
//    channel has room for one value: a reader that falls behind loses
//    ticks, Go's sendTime), or call a function on the firing worker.
//  * References: the handle (Timer, Ticker; after() drops its own at once)
//    holds one, and each heap entry holds one. Whoever takes the node out
//    of a heap owns that entry's reference: stop()/reset() when
//    TimerHeap::remove succeeds, the firing worker when it popped the node.
//  * `active` (under `lock`) says the current arming is still to fire. A
//    firing is stale, and only drops its reference, when the timer was
//    stopped meanwhile (!active) or re-armed (the node is in a heap again:
//    owner set). So a pop that raced with stop()/reset() delivers nothing,
//    and exactly one firing acts per arming.
//  * Channel sends and the draining in stop()/reset() happen under `lock`:
//    that is what makes "no value from the old timing after stop() or
//    reset() returns" hold (Go 1.23). Function timers call their function
//    after unlocking (it may take other locks, e.g. a Context's).
//  * A Ticker re-arms itself in fire() on the grid when + k x period, the
//    first point after now: no drift, and ticks missed while the worker was
//    busy are dropped, not bunched (Go's ticker).
//  * Every live core is on `all_timers`, so that when the runtime stops,
//    run_main can take the ones still in a heap out and drop those heap
//    references (drop_pending_timers); otherwise a pending after() would
//    leak its channel past gort::run.
//
// Lock order: a TimerCore's lock, then its channel's lock (send, drain);
// TimerHeap locks are taken under a TimerCore's lock (add, remove) and never
// the other way round (fire() runs with no heap lock held).
//
// Rejected
//  * A timer thread (Go's old timerproc): a thread per runtime and a hop
//    through it on every timeout, where the workers already run timers.
//  * std::shared_ptr for the heap's reference: the entry's reference has to
//    be handed from the heap to whoever pops or removes the node, which an
//    intrusive count expresses directly.
#include <gort/timer.h>

#include <stdexcept>

#include <gort/select.h>

#include "platform.h"
#include "scheduler.h"
#include "services.h"

namespace gort::detail {

class TimerCore : public TimerNode {
 public:
  Spinlock lock;
  std::atomic<int> refs{1};                       // the creator's + one per heap entry
  bool active GORT_GUARDED_BY(lock) = false;      // armed; its firing is still to act
  int64_t period GORT_GUARDED_BY(lock) = 0;       // tickers: ns between ticks; 0: once
  std::shared_ptr<Chan<Clock::time_point>> chan;  // channel timers (fixed); null for function timers
  std::function<void()> fn;                       // function timers (fixed)
  TimerCore* prev = nullptr;                      // links on all_timers (under all_timers_mu)
  TimerCore* next = nullptr;
};

namespace {

Spinlock all_timers_mu;  // a few pointer updates; taken on workers' scheduler stacks too
TimerCore* all_timers GORT_GUARDED_BY(all_timers_mu) = nullptr;

void link(TimerCore* t) {
  SpinGuard guard(all_timers_mu);
  t->next = all_timers;
  if (all_timers) all_timers->prev = t;
  all_timers = t;
}

void unlink_locked(TimerCore* t) GORT_REQUIRES(all_timers_mu) {
  if (t->prev) {
    t->prev->next = t->next;
  } else {
    all_timers = t->next;
  }
  if (t->next) t->next->prev = t->prev;
}

void release(TimerCore* t) {
  // acq_rel: the last release must see every other holder's writes before
  // it frees the core (release by them, acquire by it).
  if (t->refs.fetch_sub(1, std::memory_order_acq_rel) != 1) return;
  {
    SpinGuard guard(all_timers_mu);
    unlink_locked(t);
  }
  delete t;
}

Scheduler* running_scheduler(const char* who) {
  Scheduler* s = current_scheduler();
  if (s == nullptr || s->stopping.load(std::memory_order_acquire))
    throw std::logic_error(std::string(who) + ": no gort runtime is running");
  return s;
}

// Puts t (in no heap) into the calling worker's heap (worker 0's from a
// thread outside the runtime) for `when`, taking a heap reference unless
// the caller hands over one it owns. Returns whether a worker must be woken
// for it: do that after unlocking t->lock.
bool add_to_heap(Scheduler* s, TimerCore* t, int64_t when, bool has_reference) GORT_REQUIRES(t->lock) {
  // relaxed: the caller already holds a reference, so the count cannot
  // reach zero meanwhile; the heap hand-off itself is ordered by its lock.
  if (!has_reference) t->refs.fetch_add(1, std::memory_order_relaxed);
  t->when = when;
  Worker* w = current_worker();
  if (w == nullptr || w->sched != s) w = s->worker_at(0);
  return w->timers.add(t);
}

// The next tick on the grid when + k x period strictly after now.
int64_t next_tick(int64_t when, int64_t period, int64_t now) {
  if (when > now) return when + period;  // fired early: never happens, but stay on the grid
  return when + period * (1 + (now - when) / period);
}

void fire(TimerNode* node) GORT_NO_THREAD_SAFETY_ANALYSIS {
  auto* t = static_cast<TimerCore*>(node);
  t->lock.lock();
  if (!t->active || t->owner.load(std::memory_order_relaxed) != nullptr) {
    // Stale: stopped, or re-armed, after the heap popped this arming.
    t->lock.unlock();
    release(t);
    return;
  }
  bool rearmed = false;
  bool wake = false;
  int64_t next = 0;
  Scheduler* s = current_scheduler();
  if (t->period > 0 && s != nullptr) {
    next = next_tick(t->when, t->period, now_ns());
    wake = add_to_heap(s, t, next, /*has_reference=*/true);  // our entry's reference moves to the new one
    rearmed = true;
  } else {
    t->active = false;
  }
  if (t->chan) {
    // Full: the reader has not taken the last tick yet; this one is dropped.
    (void)t->chan->try_send(Clock::now());
    t->lock.unlock();
  } else {
    t->lock.unlock();
    t->fn();
  }
  if (wake) s->wake_worker_for_timer(next);
  if (!rearmed) release(t);
}

// Takes t out of its heap if it is in one; drops the value a channel timer
// sent for its old timing. Under t->lock.
bool disarm(TimerCore* t) GORT_REQUIRES(t->lock) {
  bool was_active = t->active;
  t->active = false;
  if (TimerHeap::remove(t)) release(t);  // the entry's reference (the caller holds another)
  if (t->chan) (void)t->chan->try_recv();
  return was_active;
}

}  // namespace

TimerCore* timer_start(int64_t delay_ns, int64_t period_ns, std::function<void()> fn) {
  Scheduler* s = running_scheduler(fn ? "gort::after_func" : "gort::Timer");
  auto* t = new TimerCore;
  t->fire = fire;
  if (fn) {
    t->fn = std::move(fn);
  } else {
    t->chan = make_chan<Clock::time_point>(1);
  }
  link(t);
  int64_t when = now_ns() + (delay_ns > 0 ? delay_ns : 0);
  bool wake;
  {
    SpinGuard guard(t->lock);
    t->period = period_ns;
    t->active = true;
    wake = add_to_heap(s, t, when, /*has_reference=*/false);
  }
  // After add the timer may fire at once on another worker: use `when`.
  if (wake) s->wake_worker_for_timer(when);
  return t;
}

bool timer_reset(TimerCore* t, int64_t delay_ns, int64_t period_ns) {
  Scheduler* s = running_scheduler("gort::Timer::reset");
  int64_t when = now_ns() + (delay_ns > 0 ? delay_ns : 0);
  bool was_active, wake;
  {
    SpinGuard guard(t->lock);
    was_active = disarm(t);
    t->period = period_ns;
    t->active = true;
    wake = add_to_heap(s, t, when, /*has_reference=*/false);
  }
  // After add the timer may fire at once on another worker: use `when`.
  if (wake) s->wake_worker_for_timer(when);
  return was_active;
}

bool timer_stop(TimerCore* t) {
  SpinGuard guard(t->lock);
  return disarm(t);
}

void timer_release(TimerCore* t) { release(t); }

const std::shared_ptr<Chan<Clock::time_point>>& timer_chan(TimerCore* t) { return t->chan; }

std::shared_ptr<Chan<Clock::time_point>> after_ns(int64_t ns) {
  running_scheduler("gort::after");
  TimerCore* t = timer_start(ns, 0, {});
  std::shared_ptr<Chan<Clock::time_point>> chan = t->chan;
  release(t);  // the heap entry keeps it until it fires
  return chan;
}

void drop_pending_timers() GORT_NO_THREAD_SAFETY_ANALYSIS {
  // The workers have joined: nothing fires or re-arms concurrently. A core
  // whose handle is still alive stays on the list until the handle drops it.
  all_timers_mu.lock();
  TimerCore* t = all_timers;
  while (t != nullptr) {
    TimerCore* next = t->next;
    if (TimerHeap::remove(t)) {
      t->active = false;
      if (t->refs.fetch_sub(1, std::memory_order_acq_rel) == 1) {
        unlink_locked(t);
        delete t;
      }
    }
    t = next;
  }
  all_timers_mu.unlock();
}

}  // namespace gort::detail

namespace gort {

detail::TimerCore* Timer::core() const {
  if (core_ == nullptr) throw std::logic_error("gort::Timer: use of a moved-from Timer");
  return core_;
}

void Timer::drop() noexcept {
  if (core_ == nullptr) return;
  if (owns_) detail::timer_stop(core_);
  detail::timer_release(core_);
  core_ = nullptr;
}

detail::TimerCore* Ticker::make(int64_t period_ns) {
  int64_t p = checked_period(period_ns);
  return detail::timer_start(p, p, {});
}

int64_t Ticker::checked_period(int64_t period_ns) {
  if (period_ns <= 0) throw std::invalid_argument("gort::Ticker: non-positive period");
  return period_ns;
}

detail::TimerCore* Ticker::core() const {
  if (core_ == nullptr) throw std::logic_error("gort::Ticker: use of a moved-from Ticker");
  return core_;
}

void Ticker::drop() noexcept {
  if (core_ == nullptr) return;
  detail::timer_stop(core_);
  detail::timer_release(core_);
  core_ = nullptr;
}

}  // namespace gort
