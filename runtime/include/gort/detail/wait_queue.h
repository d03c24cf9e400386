// wait_queue.h: the one way anything in gort waits.
//
// A Waiter stands for one blocked party: a fiber (parked through the
// scheduler, its worker keeps running other fibers) or, when the blocking
// call is made outside any fiber, a kernel thread (blocked on a futex). A
// WaitQueue is an intrusive FIFO of Waiters; the structure that owns it
// guards it with its own Spinlock.
//
// Protocol, used by every primitive (Mutex, CondVar, WaitGroup, channels):
//   waiter: lock; check the condition; enqueue itself; block(w, lock, why)
//           -- block releases the lock only after the fiber has switched out
//              (park's unlock step), so no waker can see a still-running
//              fiber;
//   waker:  lock; dequeue w; unlock; wake(w)
//           -- wake after unlock: the woken party may free the structure at
//              once, so the lock release must be the waker's last access.
// wake() is called at most once per block(), by whoever dequeued the waiter,
// which is why no wake-up can be lost or doubled.
//
// Waiting on several queues at once (select): the party enqueues one Waiter
// per queue, all pointing at one shared `claim` word (0 = unclaimed). A waker
// that dequeues such a Waiter must win try_claim() before completing the
// operation and waking it; a loser drops the Waiter (it is already off this
// queue) and looks at the next one. So exactly one waker completes exactly
// one case. The woken party then takes every queue's lock once more and
// removes its Waiters still queued (they live on its stack). Plain waits
// leave `claim` null and are always claimable (Go's sudog.isSelect /
// g.selectDone).
#pragma once

#include <atomic>
#include <cstdint>

#include <gort/detail/preempt.h>
#include <gort/detail/spinlock.h>
#include <gort/detail/wait_reason.h>

namespace gort::detail {

struct Fiber;
struct Worker;

struct Waiter {
  Fiber* fiber = nullptr;             // null: a kernel thread is blocked on `signaled`
  Worker* worker = nullptr;           // fibers: the worker running it from prepare_wait to block
  std::atomic<uint32_t> signaled{0};  // thread waiters: futex word, 1 = woken
  Waiter* next = nullptr;             // links in the WaitQueue it is on
  Waiter* prev = nullptr;
  void* data = nullptr;                    // owner-defined (channels pass the value here)
  uint64_t tag = 0;                        // owner-defined (which select case, etc.)
  bool queued = false;                     // on a WaitQueue (guarded by that queue's lock)
  std::atomic<uint32_t>* claim = nullptr;  // select: shared word, winner stores tag + 1; null otherwise
};

// Takes the right to complete w's operation. Call with w's queue lock held,
// after dequeuing w; false means another queue's waker already won (drop w).
// acq_rel: the winner's CAS is what the owner reads after waking (it pairs
// with the owner's acquire load of *claim); the losers' failed CAS orders
// nothing they use.
inline bool try_claim(Waiter* w) {
  if (w->claim == nullptr) return true;
  uint32_t expected = 0;
  return w->claim->compare_exchange_strong(expected, uint32_t(w->tag) + 1, std::memory_order_acq_rel,
                                           std::memory_order_relaxed);
}

void wake(Waiter* w);  // below

// Waiters taken off a queue under its lock, to be woken after the lock is
// released: a woken party may destroy whatever held the queue at once (a
// channel, a CondVar). Linked through Waiter::next, which a dequeued Waiter
// no longer uses, in the order they were taken.
class WaiterChain {
 public:
  static constexpr int kWakeBatch = 256;  // a run queue's worth

  // Appends take_one() until it returns null, with `lock` (the queue's)
  // held on entry and on return, but released for a preemption point
  // (preempt.h) between every kWakeBatch takes: taking a million waiters
  // off in one hold would hold the lock, and the worker, for a time slice.
  // What the caller guards with `lock` may change between two holds;
  // take_one sees it as it is. (The thread-safety analysis cannot see
  // that take_one's lock is `lock`: each caller's take_one states it.)
  template <class TakeOne>
  void take_preemptibly(Spinlock& lock, TakeOne take_one) GORT_REQUIRES(lock) GORT_NO_THREAD_SAFETY_ANALYSIS {
    take_in_holds(take_one, [&] { between_holds(lock); });
  }
  // As take_preemptibly, but each full batch is woken between two holds,
  // while its waiters are still in cache, rather than all after the last
  // hold by a second walk over the whole chain, which misses the cache
  // again on every waiter (each on its own fiber's stack). Only for a
  // caller whose object outlives a woken party destroying it between two
  // holds (a channel: its destructor waits until close() is done). The
  // last batch, fewer than kWakeBatch, stays in the chain, to be woken
  // after the caller's last hold.
  template <class TakeOne, class Wake>
  void take_waking_preemptibly(Spinlock& lock, TakeOne take_one, Wake wake_one)
      GORT_REQUIRES(lock) GORT_NO_THREAD_SAFETY_ANALYSIS {
    take_in_holds(take_one, [&]() GORT_NO_THREAD_SAFETY_ANALYSIS {
      lock.unlock();
      wake_all_preemptibly(wake_one);  // a preemption point after the batch
      lock.lock();
    });
  }
  void append(Waiter* w) {
    w->next = nullptr;
    if (tail_) {
      tail_->next = w;
    } else {
      head_ = w;
    }
    tail_ = w;
  }
  // Wakes every waiter with wake_one(w); each one's link is read before
  // it is woken, since w may be gone after. A preemption point (preempt.h)
  // after every kWakeBatch wakes: waking a million waiters takes a time
  // slice, and the caller, which holds no lock by now, yields its worker
  // like any fiber.
  template <class Wake>
  void wake_all_preemptibly(Wake wake_one) {
    int n = 0;
    for (Waiter* w = head_; w != nullptr;) {
      Waiter* next = w->next;
      wake_one(w);
      w = next;
      if (++n % kWakeBatch == 0) preemption_point();
    }
    head_ = tail_ = nullptr;
  }
  void wake_all_preemptibly() { wake_all_preemptibly(wake); }

  // Releases `lock` for a preemption point and takes it again, between
  // two holds of a take_preemptibly-like loop. Out of line: a release of a
  // few waiters, the common case, stays as short as one hold.
  [[gnu::noinline, gnu::cold]] static void between_holds(Spinlock& lock) GORT_NO_THREAD_SAFETY_ANALYSIS {
    lock.unlock();
    preemption_point();
    lock.lock();
  }

 private:
  // The loop of both takes: appends take_one() until it returns null, and
  // calls between() after every kWakeBatch taken. (Called with the
  // caller's lock held, which the analysis cannot see through a template
  // argument, as above.)
  template <class TakeOne, class Between>
  void take_in_holds(TakeOne& take_one, Between between) GORT_NO_THREAD_SAFETY_ANALYSIS {
    for (int taken = 0;; ++taken) {
      if (taken != 0 && taken % kWakeBatch == 0) between();
      Waiter* w = take_one();
      if (w == nullptr) return;
      append(w);
    }
  }

  Waiter* head_ = nullptr;
  Waiter* tail_ = nullptr;
};

class WaitQueue {
 public:
  bool empty() const { return head_ == nullptr; }
  void push_back(Waiter* w);
  Waiter* pop_front();     // null when empty
  void remove(Waiter* w);  // w must be on this queue

 private:
  Waiter* head_ = nullptr;
  Waiter* tail_ = nullptr;
};

// A Waiter queued twice, or removed from a queue it is not on (fatal).
[[noreturn]] void wait_queue_misuse(const char* what);

// Inline: every channel operation that meets a partner runs these.
inline void WaitQueue::push_back(Waiter* w) {
  if (__builtin_expect(w->queued, 0)) wait_queue_misuse("push_back of a queued Waiter");
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

inline void WaitQueue::remove(Waiter* w) {
  if (__builtin_expect(!w->queued, 0)) wait_queue_misuse("remove of a Waiter not queued");
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

inline Waiter* WaitQueue::pop_front() {
  Waiter* w = head_;
  if (w) remove(w);
  return w;
}

// Makes w's owner a waiter of the current context: fills w->fiber (null
// outside a fiber) and w->worker, and prepares the futex word. Call before
// enqueueing, with no suspension between it and block() (every caller holds
// a spinlock or takes one in between, and nothing switches fibers under a
// spinlock): block() parks on the worker recorded here instead of reading
// the thread-local again.
void prepare_wait(Waiter* w);
// Blocks until wake(w). `lock` is held on entry (w already enqueued under it)
// and released by the time anything else can observe the caller as blocked.
// `why` is what the fiber dump shows meanwhile (a thread waiter ignores it).
void block(Waiter* w, Spinlock& lock, WaitReason why) GORT_RELEASE(lock);
// Resumes w's owner. At most once per block(); callable from any thread.
void wake(Waiter* w);

}  // namespace gort::detail
