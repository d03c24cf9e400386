// injector.h: the scheduler's queue for work that arrives from outside a
// worker's own run queue: fibers readied or spawned by threads that are not
// workers, and the overflow of a full run queue. Any thread enqueues; workers
// take batches.
//
// Backed by moodycamel::ConcurrentQueue (lock-free, per-producer sub-queues;
// not FIFO across producers, which the scheduler does not need: fairness
// comes from the periodic injector check in find_runnable).
//
// Under ThreadSanitizer it is a mutex and a deque instead. moodycamel
// synchronises through standalone atomic_thread_fence, which TSan does not
// model: it then reports races inside the queue and, worse, cannot see that
// a fiber's writes before it was injected happen before the worker that
// dequeues it runs it, and reports those too. The mutex gives TSan the
// happens-before edge the real queue provides; everything else the
// scheduler does is still checked.
#pragma once

#include <cstddef>

#include "fiber.h"
#include "platform.h"

#if GORT_TSAN
#include <deque>
#include <mutex>
#else
#include <concurrentqueue/concurrentqueue.h>
#endif

namespace gort::detail {

#if !GORT_TSAN

class Injector {
 public:
  void push(Fiber* f) { queue_.enqueue(f); }
  void push_batch(Fiber** fibers, std::size_t n) { queue_.enqueue_bulk(fibers, n); }
  // Up to max fibers into out; returns how many.
  std::size_t pop_batch(Fiber** out, std::size_t max) { return queue_.try_dequeue_bulk(out, max); }
  bool pop(Fiber*& f) { return queue_.try_dequeue(f); }
  // Approximate: exact once producers and consumers are quiet.
  std::size_t size_approx() const { return queue_.size_approx(); }

 private:
  moodycamel::ConcurrentQueue<Fiber*> queue_;
};

#else

class Injector {
 public:
  void push(Fiber* f) {
    std::lock_guard lock(mu_);
    queue_.push_back(f);
    size_.store(queue_.size(), std::memory_order_release);
  }
  void push_batch(Fiber** fibers, std::size_t n) {
    std::lock_guard lock(mu_);
    queue_.insert(queue_.end(), fibers, fibers + n);
    size_.store(queue_.size(), std::memory_order_release);
  }
  std::size_t pop_batch(Fiber** out, std::size_t max) {
    std::lock_guard lock(mu_);
    std::size_t n = 0;
    while (n < max && !queue_.empty()) {
      out[n++] = queue_.front();
      queue_.pop_front();
    }
    size_.store(queue_.size(), std::memory_order_release);
    return n;
  }
  bool pop(Fiber*& f) { return pop_batch(&f, 1) == 1; }
  std::size_t size_approx() const { return size_.load(std::memory_order_acquire); }

 private:
  std::mutex mu_;
  std::deque<Fiber*> queue_;
  std::atomic<std::size_t> size_{0};
};

#endif

}  // namespace gort::detail
