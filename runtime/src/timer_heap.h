// timer_heap.h: a worker's timers, a 4-ary min-heap keyed by deadline.
//
// An entry holds the deadline beside the node's pointer, so ordering the heap
// reads only its own array: the nodes live on parked fibers' stacks, a page
// and a cache line each, and comparing through them missed on every level of
// a large heap. Four children per node halve the levels a pop walks (Go's
// heap is 4-ary too), and each level's children are adjacent in the array.
// A node is touched only to record where it moved (`index`, for remove).
//
// Each worker owns one heap; timers are added to the heap of the worker that
// runs the adding code, so adding is uncontended in practice. The heap is
// still guarded by a spinlock because other workers run its expired timers
// when its owner is busy (like Go's timer stealing), and because a timer can
// be cancelled from any worker.
//
// A TimerNode belongs to its creator (it usually lives on a parked fiber's
// stack). Lifecycle, with `owner` the heap it is in:
//   add:     owner null -> heap (under that heap's lock)
//   run:     popped under the lock (owner -> null; `fire` read there), then
//            fire(node) is called with no lock held
//   remove:  under the lock, if still in that heap (owner -> null); returns
//            false if the timer was already popped (it fired or is firing)
// A node's creator may free it only when it is in no heap and its fire has
// finished; for sleeping fibers that is automatic, since fire() readies the
// fiber as its last access to the node.
#pragma once

#include <atomic>
#include <cstdint>
#include <limits>
#include <vector>

#include <gort/detail/spinlock.h>
#include "platform.h"

namespace gort::detail {

class TimerHeap;

struct TimerNode {
  int64_t when = 0;                        // deadline, now_ns() clock
  void (*fire)(TimerNode*) = nullptr;      // called once, no locks held
  std::atomic<TimerHeap*> owner{nullptr};  // heap holding it, or null
  uint32_t index = 0;                      // position in owner's heap (under its lock)
};

class TimerHeap {
 public:
  // Returns true if the node became the earliest timer of this heap.
  bool add(TimerNode* node);
  // Removes node from whichever heap holds it; false if it is in none.
  static bool remove(TimerNode* node);
  // Pops and fires the timers due at `now`, earliest first, at most `max`
  // of them. Returns how many fired.
  int run_expired(int64_t now, int max = std::numeric_limits<int>::max());
  // Earliest deadline, kNever when empty. Lock-free read for other workers.
  int64_t next_when() const { return next_when_.load(std::memory_order_acquire); }
  // Timers in the heap (takes the lock: for metrics, not for hot paths).
  std::size_t pending();
  // Gives back the array's room when it is mostly empty: after a peak of
  // timers it would keep its peak size for good. The scavenger's.
  void shrink();

 private:
  // `when` is a copy of node->when, which does not change while the node is
  // in a heap (its creator sets it before add and after remove or a fire).
  struct Entry {
    int64_t when;
    TimerNode* node;
  };
  static constexpr uint32_t kArity = 4;

  void place(uint32_t i, Entry e) GORT_REQUIRES(lock_);
  void sift_up(uint32_t i) GORT_REQUIRES(lock_);
  void sift_down(uint32_t i) GORT_REQUIRES(lock_);
  void erase_at(uint32_t i) GORT_REQUIRES(lock_);
  void publish_next() GORT_REQUIRES(lock_);

  Spinlock lock_;
  std::vector<Entry> heap_ GORT_GUARDED_BY(lock_);
  std::atomic<int64_t> next_when_{kNever};  // heap_[0].when, published under lock_
};

}  // namespace gort::detail
