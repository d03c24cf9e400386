// waitgroup.h: gort::WaitGroup, Go's sync.WaitGroup.
//
//   WaitGroup wg; wg.add(n); ... each worker: wg.done(); ... wg.wait();
//
// The counter and the number of waiters share one 64-bit word (as in Go), so
// the add() that brings the counter to zero knows exactly how many waiters to
// release and nothing else touches the WaitGroup afterwards: a waiter may
// destroy it as soon as wait() returns.
#pragma once

#include <atomic>
#include <cstdint>

#include <gort/detail/wait_queue.h>

namespace gort {

class WaitGroup {
 public:
  WaitGroup() = default;
  WaitGroup(const WaitGroup&) = delete;
  WaitGroup& operator=(const WaitGroup&) = delete;

  // Adds delta (may be negative) to the counter. A counter below zero is a
  // fatal error, as in Go. The call that brings it to zero wakes the
  // waiters, with a preemption point every few hundred (it may yield and
  // resume on another thread when it releases many).
  void add(int64_t delta);
  void done() { add(-1); }
  // Blocks until the counter is zero.
  void wait();

 private:
  std::atomic<uint64_t> state_{0};  // high 32 bits: counter; low 32: waiters
  detail::Spinlock lock_;           // guards waiters_ and released_
  detail::WaitQueue waiters_;
  uint32_t released_ = 0;  // wake-ups granted but not yet consumed
};

}  // namespace gort
