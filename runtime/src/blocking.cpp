// blocking.cpp: the helper pool behind gort::blocking.
//
// Design
//  * One pool per running runtime, created by the first blocking call and
//    stopped by run_main once the workers have joined (services.h).
//  * A call is a BlockingCall on the parked fiber's stack. The fiber parks
//    first; park's unlock step (on the worker, after the switch) queues the
//    call. So a helper can never ready a fiber that is still running, which
//    is park.h's rule for every waker.
//  * Helpers are plain threads taking calls FIFO from one mutex-guarded
//    queue. A helper is started when a call is queued, none is idle and the
//    bound allows; otherwise the call waits its turn (nothing is lost).
//  * Deadlock detection: from just before the fiber parks until after a
//    helper has readied it, Scheduler::external_wakers counts the call, so
//    "all fibers are asleep" is never reported while a helper is about to
//    wake one. Helpers count in Scheduler::helper_threads (incremented before
//    a thread starts, decremented after it is joined: any error is in the
//    direction of "not a deadlock").
//
// Rejected
//  * A thread per call: unbounded threads under load; the bound and the
//    queue give back-pressure instead.
//  * Handing the worker itself to the blocking call and starting a spare
//    worker (Go's syscall hand-off of the P): needs worker hand-off in the
//    scheduler; a pool is independent of it and enough for file I/O and DNS.
#include <gort/blocking.h>

#include <algorithm>
#include <condition_variable>
#include <mutex>
#include <stdexcept>
#include <thread>
#include <vector>

#include "park.h"
#include "platform.h"
#include "scheduler.h"
#include "services.h"

namespace gort::detail {

namespace {

class HelperPool;

struct BlockingCall {
  void (*job)(void*);  // runs on a helper; never throws
  void* arg;
  Fiber* fiber;  // parked until job returns
  Scheduler* sched;
  HelperPool* pool;
  BlockingCall* next;  // on HelperPool::queue_ (under its mutex)
};

std::atomic<int> requested_bound{0};  // set_blocking_threads; 0 = default

int bound_for(const Scheduler* s) {
  int n = requested_bound.load(std::memory_order_relaxed);
  return n > 0 ? n : std::max(4, 2 * (s ? s->nworkers : 1));
}

class HelperPool {
 public:
  explicit HelperPool(Scheduler* s) : sched_(s) {}

  // Called from park's unlock step: `c` may be taken by a helper as soon as
  // mu_ is released, so that is the last access to it.
  void submit(BlockingCall* c) {
    std::lock_guard lock(mu_);
    c->next = nullptr;
    if (tail_) {
      tail_->next = c;
    } else {
      head_ = c;
    }
    tail_ = c;
    ++queued_;
    if (queued_ > idle_ && int(threads_.size()) < bound_for(sched_)) {
      start_helper();
    } else if (idle_ > 0) {
      cv_.notify_one();
    }
  }

  BlockingPoolLoad load() {
    std::lock_guard lock(mu_);
    return BlockingPoolLoad{int(threads_.size()), running_, queued_};
  }

  void stop() {
    {
      std::lock_guard lock(mu_);
      stopping_ = true;
    }
    cv_.notify_all();
    for (auto& t : threads_) {
      t.join();
      sched_->helper_threads.fetch_sub(1);
    }
  }

 private:
  void start_helper() {
    sched_->helper_threads.fetch_add(1);  // before the thread exists: see the design note
    try {
      threads_.emplace_back([this] { helper_loop(); });
    } catch (const std::system_error&) {
      sched_->helper_threads.fetch_sub(1);
      // With helpers running, the call just waits for one of them.
      if (threads_.empty()) fatal("gort::blocking: cannot start a helper thread");
    }
  }

  void helper_loop() {
    std::unique_lock lock(mu_);
    for (;;) {
      while (!stopping_ && head_ == nullptr) {
        ++idle_;
        cv_.wait(lock);
        --idle_;
      }
      if (stopping_) return;  // queued calls belong to abandoned fibers
      BlockingCall* c = head_;
      head_ = c->next;
      if (head_ == nullptr) tail_ = nullptr;
      --queued_;
      ++running_;
      lock.unlock();
      c->job(c->arg);
      Scheduler* s = c->sched;  // read before ready(): c is on the fiber's stack
      ready(c->fiber);
      // seq_cst, after ready() published the fiber in a run queue: the
      // deadlock check sees either the fiber or this call.
      s->external_wakers.fetch_sub(1);
      lock.lock();
      --running_;
    }
  }

  Scheduler* const sched_;
  std::mutex mu_;
  std::condition_variable cv_;  // helpers wait here for calls or stop
  // All under mu_ (std::mutex carries no clang capability annotation).
  BlockingCall* head_ = nullptr;  // FIFO of calls not yet taken
  BlockingCall* tail_ = nullptr;
  int queued_ = 0;   // calls on the FIFO
  int running_ = 0;  // calls a helper has taken and not yet finished
  int idle_ = 0;    // helpers waiting on cv_
  bool stopping_ = false;
  std::vector<std::thread> threads_;  // under mu_ while running; stop() joins them
};

std::mutex pool_mu;
HelperPool* pool = nullptr;  // of the running runtime, once used (under pool_mu)

HelperPool* pool_for(Scheduler* s) {
  std::lock_guard lock(pool_mu);
  if (pool == nullptr) pool = new HelperPool(s);
  return pool;
}

}  // namespace

BlockingPoolLoad blocking_pool_load() {
  std::lock_guard lock(pool_mu);
  return pool != nullptr ? pool->load() : BlockingPoolLoad{};
}

void run_blocking(void (*job)(void*), void* arg) {
  Fiber* self = current_fiber();
  if (self == nullptr) {
    job(arg);
    return;
  }
  Scheduler* s = current_scheduler();
  BlockingCall call{job, arg, self, s, pool_for(s), nullptr};
  // seq_cst, before this fiber can look asleep: pairs with the deadlock
  // check's load in nothing_can_run().
  s->external_wakers.fetch_add(1);
  park(
      WaitReason::kBlockingCall,
      [](void* p) {
        auto* c = static_cast<BlockingCall*>(p);
        c->pool->submit(c);
        return true;
      },
      &call);
}

void stop_blocking_pool() {
  HelperPool* p;
  {
    std::lock_guard lock(pool_mu);
    p = pool;
    pool = nullptr;
  }
  if (p == nullptr) return;
  p->stop();
  delete p;
}

}  // namespace gort::detail

namespace gort {

void set_blocking_threads(int n) {
  if (n < 0) throw std::invalid_argument("gort::set_blocking_threads: n must be >= 0");
  detail::requested_bound.store(n, std::memory_order_relaxed);
}

int blocking_threads() { return detail::bound_for(detail::current_scheduler()); }

}  // namespace gort
