// after.cpp: gort::after, Go's time.After, on the runtime's timer heaps.
//
// Each call makes a capacity-1 channel and a heap-allocated AfterTimer that
// holds it. The timer goes on the calling worker's heap (worker 0's from a
// thread outside the runtime); when it fires, on whichever worker runs it,
// it sends the current time without blocking (it is the channel's only
// sender and the buffer has room) and frees itself.
//
// Invariant: every AfterTimer not yet fired is on `pending`, so that when
// the runtime stops, run_main can free the ones that never will fire
// (drop_pending_after_timers); otherwise each select that a timeout lost
// would leak its timer past gort::run.
//
// Rejected: a timer thread (Go's old timerproc): a thread per runtime and a
// hop through it on every timeout, where the workers already run timers.
#include <memory>
#include <stdexcept>

#include <gort/select.h>

#include "scheduler.h"
#include "services.h"

namespace gort::detail {

namespace {

struct AfterTimer : TimerNode {
  std::shared_ptr<Chan<Clock::time_point>> chan;  // what fire() sends on
  AfterTimer* prev = nullptr;                      // links on `pending` (under pending_mu)
  AfterTimer* next = nullptr;
};

Spinlock pending_mu;  // a few pointer updates; taken on workers' scheduler stacks too
AfterTimer* pending GORT_GUARDED_BY(pending_mu) = nullptr;

void link(AfterTimer* t) {
  pending_mu.lock();
  t->next = pending;
  if (pending) pending->prev = t;
  pending = t;
  pending_mu.unlock();
}

void unlink(AfterTimer* t) {
  pending_mu.lock();
  if (t->prev) {
    t->prev->next = t->next;
  } else {
    pending = t->next;
  }
  if (t->next) t->next->prev = t->prev;
  pending_mu.unlock();
}

void fire(TimerNode* node) {
  auto* t = static_cast<AfterTimer*>(node);
  unlink(t);
  bool sent = t->chan->try_send(Clock::now());
  GORT_CHECK(sent);  // the only send on a capacity-1 channel
  delete t;
}

}  // namespace

std::shared_ptr<Chan<Clock::time_point>> after_ns(int64_t ns) {
  Scheduler* s = current_scheduler();
  if (s == nullptr || s->stopping.load(std::memory_order_acquire))
    throw std::logic_error("gort::after: no gort runtime is running");
  auto chan = make_chan<Clock::time_point>(1);
  auto* t = new AfterTimer;
  int64_t when = now_ns() + (ns > 0 ? ns : 0);
  t->when = when;
  t->fire = fire;
  t->chan = chan;
  link(t);
  Worker* w = current_worker();
  if (w == nullptr || w->sched != s) w = s->worker_at(0);
  // After add() the timer may fire at once on another worker: use `when`.
  if (w->timers.add(t)) s->wake_worker_for_timer(when);
  return chan;
}

void drop_pending_after_timers() {
  // The workers have joined: no timer can fire concurrently.
  pending_mu.lock();
  while (AfterTimer* t = pending) {
    pending = t->next;
    TimerHeap::remove(t);
    delete t;
  }
  pending_mu.unlock();
}

}  // namespace gort::detail
