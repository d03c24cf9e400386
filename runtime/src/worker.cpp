// worker.cpp: a worker's schedule loop: find work, switch into it, handle
// what the fiber asked for when it switched back. See scheduler.h for the
// design and the wake-up argument.
#include <algorithm>
#include <cstdio>
#include <exception>

#include "netpoll.h"
#include "overflow.h"
#include "platform.h"
#include "scheduler.h"

namespace gort::detail {

namespace {
thread_local Worker* tls_worker = nullptr;
constexpr int kStealRounds = 4;
constexpr int kInjectorBatch = 32;
constexpr int64_t kDeadlockGraceNs = 100'000'000;
}  // namespace

// noinline + asm barrier: the compiler must re-read the thread pointer on
// every call, because the fiber calling it may have moved to another thread
// since its last call (see "Thread-locals" in docs/ARCHITECTURE.md).
__attribute__((noinline)) Worker* current_worker() {
  asm volatile("" ::: "memory");
  return tls_worker;
}

__attribute__((noinline)) Fiber* current_fiber() {
  asm volatile("" ::: "memory");
  return tls_worker ? tls_worker->current : nullptr;
}

Worker::Worker(Scheduler* s, int i, std::size_t default_stack)
    : sched(s), index(i), stacks(&s->stack_pool, default_stack),
      rng(0x9E3779B97F4A7C15ull * uint64_t(i + 1)) {}

uint64_t Worker::next_random() {
  rng ^= rng << 13;
  rng ^= rng >> 7;
  rng ^= rng << 17;
  return rng;
}

void Worker::loop() {
  tls_worker = this;
  sched_san.init_thread();
  AltStack altstack;  // overflow reports run on it
  for (;;) {
    Fiber* f = find_runnable();
    if (f == nullptr) break;
    if (spinning) stop_spinning();
    execute(f);
  }
  stacks.trim();
  tls_worker = nullptr;
}

void Worker::stop_spinning() {
  spinning = false;
  // seq_cst: part of the readier/parker protocol in scheduler.h. If we were
  // the last spinner, new work may be waiting with nobody looking: wake one.
  if (sched->nspinning.fetch_sub(1) == 1) sched->wake_idle_worker();
}

// Runs f (from the schedule loop's own stack) until some fiber switches back
// to the loop, then carries out that fiber's request. With direct switches
// (switch_out) the fiber that comes back need not be f.
void Worker::execute(Fiber* f) {
  f->set_state(FiberState::kRunnable, FiberState::kRunning);
  current = f;
  --until_fairness_turn;  // >= 1: find_runnable resets it when it reaches 0
  annotate_switch_begin(&sched_san, &f->san, false);
  Transfer t = jump(f->ctx, this);
  annotate_switch_end(&sched_san, &f->san);
  auto* req = static_cast<SwitchRequest*>(t.data);
  Fiber* from = req->from;
  from->ctx = t.fctx;
  current = nullptr;
  finish_switch(from, req);
}

// finish_switch's kExit case (kept out of the inline switch path).
void Worker::finish_exit(Fiber* from) {
  from->set_state(FiberState::kRunning, FiberState::kDead);
  from->san.destroy();
  Stack s = from->stack;
  from->~Fiber();
  stacks.put(s);
  // seq_cst: read by the deadlock check.
  sched->live_fibers.fetch_sub(1);
}

Fiber* Worker::take_from_injector() {
  if (sched->injector.size_approx() == 0) return nullptr;
  Fiber* batch[kInjectorBatch];
  // Take a fair share, not everything: other workers want some too.
  std::size_t want = std::clamp<std::size_t>(sched->injector.size_approx() / sched->nworkers + 1, 1,
                                             kInjectorBatch);
  std::size_t n = sched->injector.pop_batch(batch, want);
  if (n == 0) return nullptr;
  for (std::size_t i = 1; i < n; ++i) push_local(batch[i], false);
  return batch[0];
}

bool Worker::run_timers(int64_t now) { return timers.run_expired(now) > 0; }

Fiber* Worker::steal() {
  int n = sched->nworkers;
  for (int round = 0; round < kStealRounds; ++round) {
    bool last_round = round == kStealRounds - 1;
    int start = int(next_random() % uint64_t(n));
    for (int k = 0; k < n; ++k) {
      Worker* victim = sched->workers[(start + k) % n].get();
      if (victim == this) continue;
      // A busy worker's timers would be late: run them for it.
      int64_t when = victim->timers.next_when();
      if (when != kNever && when <= now_ns() && victim->timers.run_expired(now_ns()) > 0) {
        if (Fiber* f = runq.pop()) return f;
      }
      if (Fiber* f = runq.steal_half_into_me(victim->runq, last_round)) return f;
    }
  }
  return nullptr;
}

// The find-work loop, step by step. Returns null only when the runtime stops.
Fiber* Worker::find_runnable() {
  for (;;) {
    // 0. Stopping: the main fiber has returned.
    if (sched->stopping.load(std::memory_order_acquire)) return nullptr;

    // 1. Our timers that are due (a clock read only if any is pending).
    if (timers.next_when() != kNever) {
      int64_t now = now_ns();
      if (timers.next_when() <= now) run_timers(now);
    }

    // 2. Fairness: now and then the injector before the local queue, so a
    //    pair of fibers readying each other cannot starve outside work.
    if (until_fairness_turn == 0) {
      until_fairness_turn = kInjectorCheckInterval;
      // netpoll: the same turn polls the network without blocking (there is
      // no sysmon), so a stream of runnable fibers cannot starve ready I/O.
      // What it readies goes behind the injector, not onto the local queue:
      // under load the local queue overflows into the injector, and fibers
      // the poller readies now must not overtake those readied earlier
      // (that made a few connections wait 20x the median; Go's sysmon puts
      // polled fibers on its global queue for the same reason).
      poll_network(false, true);
      if (Fiber* f = take_from_injector()) return f;
    }

    // 3. Local queue, then the injector.
    if (Fiber* f = runq.pop()) return f;
    if (Fiber* f = take_from_injector()) return f;

    // 3b. netpoll: ready I/O before stealing (Go's netpoll(0) in
    //     findrunnable), unless a worker is blocked in the poller (it gets
    //     the events) or there is nobody to steal from (park_worker polls).
    if (sched->nworkers > 1 && poll_network(true)) continue;

    // 4. Steal, if not too many workers are already spinning (at most half
    //    of the busy ones: spinning burns CPU that busy workers could use).
    int busy = sched->nworkers - sched->nidle.load();
    if (spinning || 2 * sched->nspinning.load() < busy) {
      if (!spinning) {
        spinning = true;
        sched->nspinning.fetch_add(1);
      }
      if (Fiber* f = steal()) return f;
    }

    // 5. Nothing: park this worker until woken or a timer is due.
    park_worker();
  }
}

// The idle path. Follows the order argued in scheduler.h.
void Worker::park_worker() {
  Scheduler* s = sched;
  // (1) Go on the idle list, unless work arrived in the injector meanwhile.
  //     Our `spinning` flag is cleared under the same lock: once we are on
  //     the list a waker may set it again (for the nspinning it hands us).
  bool was_spinning;
  {
    std::lock_guard lock(s->idle_mu);
    if (s->stopping.load() || s->injector.size_approx() != 0) return;
    wake_word.store(0, std::memory_order_relaxed);
    s->idle_list.push_back(this);
    on_idle_list = true;
    s->nidle.fetch_add(1);  // seq_cst: (1) of the protocol
    was_spinning = spinning;
    spinning = false;
  }
  // (2) Drop our count in nspinning.
  if (was_spinning) s->nspinning.fetch_sub(1);  // seq_cst: (2)
  // (3) Re-check every queue: a readier may have seen us spinning and not
  //     woken anyone.
  if (was_spinning) {
    bool work = s->injector.size_approx() != 0;
    for (auto& w : s->workers) work = work || !w->runq.empty();
    if (work) {
      std::lock_guard lock(s->idle_mu);
      if (on_idle_list) {
        s->idle_list.erase(std::find(s->idle_list.begin(), s->idle_list.end(), this));
        on_idle_list = false;
        s->nidle.fetch_sub(1);
        spinning = true;  // resume spinning: we go straight back to stealing
        s->nspinning.fetch_add(1);
      }
      // else a waker took us off the list and set `spinning` for us.
      return;
    }
  }

  // Idle for real: give deep stack pages back while nothing runs here.
  stacks.trim();

  int64_t deadline = s->earliest_timer();
  bool deadlock_suspect = false;
  uint64_t epoch = 0;
  {
    std::lock_guard lock(s->idle_mu);
    if (!on_idle_list) return;  // woken meanwhile
    if (s->detect_deadlock && deadline == kNever && s->nothing_can_run()) {
      // Everything looks asleep. Wait a grace period: a thread outside the
      // runtime that is just now readying a fiber will bump wake_epoch.
      deadlock_suspect = true;
      epoch = s->wake_epoch.load();
      deadline = now_ns() + kDeadlockGraceNs;
    }
    parked_until.store(deadline, std::memory_order_seq_cst);
  }
  // A timer added from another thread after we read earliest_timer() but
  // before it saw our parked_until would be lost (the adder thinks nobody
  // sleeps past it). Dekker with wake_worker_for_timer: each side writes
  // (parked_until / the heap's next_when), fences seq_cst, then reads the
  // other's word, so at least one of them sees the other.
  std::atomic_thread_fence(std::memory_order_seq_cst);
  if (int64_t again = s->earliest_timer(); again < deadline) {
    deadline = again;
    parked_until.store(deadline, std::memory_order_seq_cst);
  }
  // ---- netpoll: while fibers wait for I/O, one idle worker sleeps in the
  // poller instead of on the futex, until the same deadline (netpoll.h).
  ReadyBatch io;
  if (!sleep_in_netpoll(deadline, io)) {
    while (wake_word.load(std::memory_order_acquire) == 0) {
      if (deadline != kNever && now_ns() >= deadline) break;
      futex_wait(&wake_word, 0, deadline);
    }
  }
  parked_until.store(-1, std::memory_order_seq_cst);

  {
    std::lock_guard lock(s->idle_mu);
    if (on_idle_list) {
      // Timed out (a timer is due, or the deadlock grace ended), or the
      // poller readied fibers.
      if (deadlock_suspect && s->wake_epoch.load() == epoch && s->nothing_can_run()) {
        int64_t parked = s->live_fibers.load();
        fatal("all fibers are asleep - deadlock! (%lld fiber%s parked, nothing can wake %s)",
              (long long)parked, parked == 1 ? "" : "s", parked == 1 ? "it" : "them");
      }
      s->idle_list.erase(std::find(s->idle_list.begin(), s->idle_list.end(), this));
      on_idle_list = false;
      s->nidle.fetch_sub(1);
    }
    // else: woken by wake_idle_worker (which set `spinning`) or by stop/timers.
  }
  // ---- netpoll: queue what the poller readied, only now that we are off
  // the idle list (a wake-up for these fibers must not pick us).
  queue_polled(io);
}

}  // namespace gort::detail
