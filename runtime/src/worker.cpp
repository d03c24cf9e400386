// worker.cpp: a worker's schedule loop: find work, switch into it, handle
// what the fiber asked for when it switched back. See scheduler.h for the
// design and the wake-up argument, monitor.h for spares.
#include <algorithm>
#include <cstdio>
#include <exception>

#include "monitor.h"
#include "netpoll.h"
#include "overflow.h"
#include "platform.h"
#include "scheduler.h"

namespace gort::detail {

namespace {
std::atomic<bool> g_never_preempt{false};  // tls_preempt_flag outside workers: never set
thread_local Worker* tls_worker = nullptr;
}  // namespace
constinit thread_local std::atomic<bool>* tls_preempt_flag = &g_never_preempt;

namespace {
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
  return tls_worker ? tls_worker->current.load(std::memory_order_relaxed) : nullptr;
}

Worker::Worker(Scheduler* s, int i, Kind k, std::size_t default_stack)
    : sched(s),
      index(i),
      kind(k),
      own(&s->stack_pool, &s->fiber_pool, default_stack, 0x9E3779B97F4A7C15ull * uint64_t(i + 1)) {}

uint64_t Worker::next_random() {
  own.rng ^= own.rng << 13;
  own.rng ^= own.rng >> 7;
  own.rng ^= own.rng << 17;
  return own.rng;
}

void Worker::loop() {
  tls_worker = this;
  tls_preempt_flag = &preempt_flag;
  own.sched_san.init_thread();
  AltStack altstack;  // overflow reports run on it
  busy_begin();
  for (;;) {
    Fiber* f = find_runnable();
    if (f == nullptr) break;
    if (spinning) stop_spinning();
    execute(f);
  }
  busy_end();
  own.stacks.trim();
  tls_preempt_flag = &g_never_preempt;
  tls_worker = nullptr;
}

void Worker::busy_begin() { busy_since.store(now_ns(), std::memory_order_relaxed); }

void Worker::busy_end() {
  int64_t since = busy_since.load(std::memory_order_relaxed);
  busy_since.store(0, std::memory_order_relaxed);
  // release: a reader that sees the new total sees busy_since == 0 too.
  busy_ns.store(busy_ns.load(std::memory_order_relaxed) + (now_ns() - since), std::memory_order_release);
}

int64_t Worker::busy_ns_now() const {
  int64_t total = busy_ns.load(std::memory_order_acquire);
  int64_t since = busy_since.load(std::memory_order_relaxed);
  return since == 0 ? total : total + std::max<int64_t>(0, now_ns() - since);
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
  if (f->ctx == nullptr) bind_stack_on_first_run(this, f);
  current.store(f, std::memory_order_release);  // see Worker::current
  note_switch(1);                               // odd: a fiber runs
  --own.until_fairness_turn;                    // >= 1: find_runnable resets it when it reaches 0
  annotate_switch_begin(&own.sched_san, &f->san, Suspended::kWillResume);
  Transfer t = jump(f->ctx, this);
  annotate_switch_end(&own.sched_san, &f->san);
  auto* req = static_cast<SwitchRequest*>(t.data);
  Fiber* from = req->from;
  from->ctx = t.fctx;
  note_switch(1);  // even: back in the loop
  current.store(nullptr, std::memory_order_release);
  finish_switch(from, req);
}

// finish_switch's kExit case (kept out of the inline switch path).
void Worker::finish_exit(Fiber* from) {
  from->set_state(FiberState::kRunning, FiberState::kDead);
  from->san.destroy();
  own.stacks.put(from->stack);
  from->~Fiber();  // the record keeps kDead: the fiber dump skips it
  own.fibers.put(from);
  // After the stack and record are back (the leak checks read this first).
  bump(exited);
}

// finish_switch's kPreempt case: the fiber's time slice ran out. It goes
// behind the injector, after whatever the network has readied meanwhile
// (Go's gopreempt_m puts it on the global queue). If fibers were waiting
// there, the next pass of find_runnable takes the fairness turn, injector
// first, so that they (a bystander's request) run before the local queue
// and before the preempted fiber comes back; if not, the local queue goes
// first as usual, so a fiber readied here (a due timer's) is not starved by
// the preempted one coming straight back out of the injector.
void Worker::finish_preempt(Fiber* from) {
  from->set_state(FiberState::kRunning, FiberState::kRunnable);
  preemptions.store(preemptions.load(std::memory_order_relaxed) + 1, std::memory_order_relaxed);
  bool outside_work =
      poll_network(PollWhen::kAlways, PolledWhere::kBehindInjector) || sched->injector.size_approx() != 0;
  sched->injector.push(from);
  sched->wake_idle_worker();
  if (outside_work) own.until_fairness_turn = 0;
}

Fiber* Worker::take_from_injector() {
  if (sched->injector.size_approx() == 0) return nullptr;
  Fiber* batch[kInjectorBatch];
  // Take a fair share, not everything: other workers want some too. And
  // at most half the local ring's room: on a fairness turn the ring still
  // holds work, and a batch that overflowed it would send half of it, the
  // fibers readied there (a due timer's) among them, to the injector's
  // tail, behind everything waiting there (a fan-out's fibers not yet
  // started, say). Go's fairness turn takes one.
  std::size_t want =
      std::clamp<std::size_t>(sched->injector.size_approx() / std::size_t(sched->active_workers()) + 1, 1,
                              std::clamp<std::size_t>(std::size_t(local_room()) / 2, 1, kInjectorBatch));
  std::size_t n = sched->injector.pop_batch(batch, want);
  if (n == 0) return nullptr;
  for (std::size_t i = 1; i < n; ++i) push_local(batch[i], RunNext::kNo);
  return batch[0];
}

// At most half as many as the local ring has room for, as an injector
// batch: a burst of expired timers (the worker was held up, or a fan-out's
// sleepers all end at once) that overflowed the ring would send half of it,
// the woken fibers among them, to the injector's tail, behind whatever waits
// there (a fan-out's fibers not yet started, say). Filling the ring to the
// brim would do the same one step later: the next fiber to yield (a sleep
// whose deadline passed before it began yields) overflows it. The rest stay
// due and fire on a later pass, which the direct switch path makes at the
// next switch. A ring kept full (by fibers that yield in a loop) cannot hold
// timers back for good: the fairness turn, every kInjectorCheckInterval
// schedules, fires one, which a full ring takes without overflowing: the
// woken fiber goes to the next slot, and a fiber it displaces from there
// finds a slot in the ring (local_room counts a full next slot as a taken
// slot of the ring). The bound counts timers, not the fibers they ready: a
// timer whose callback readies several (a channel's, an after_func's) can
// still overflow the ring; sleeps and deadlines ready one.
int Worker::timer_budget() {
  int max = local_room() / 2;
  if (max == 0 && own.until_fairness_turn == 0) max = 1;
  return max;
}

bool Worker::run_timers(int64_t now) {
  int max = timer_budget();
  return max > 0 && timers.run_expired(now, max) > 0;
}

bool Worker::run_timers_of(Worker* other) {
  int64_t when = other->timers.next_when();
  if (when == kNever) return false;
  int64_t now = now_ns();
  int max = local_room() / 2;  // as run_timers, without the fairness turn's one
  return when <= now && max > 0 && other->timers.run_expired(now, max) > 0;
}

bool Worker::run_others_due_timers() {
  bool fired = false;
  for (int i = 0, n = sched->slot_count(); i < n; ++i)
    if (Worker* other = sched->worker_at(i); other != this) fired |= run_timers_of(other);
  return fired;
}

int Worker::local_room() { return std::max(0, int(RunQueue::kCapacity) - int(local_queue().size())); }

Fiber* Worker::steal() {
  int n = sched->slot_count();  // workers and spares: a spare's queue is stolen like any other
  for (int round = 0; round < kStealRounds; ++round) {
    bool last_round = round == kStealRounds - 1;
    int start = int(next_random() % uint64_t(n));
    for (int k = 0; k < n; ++k) {
      Worker* victim = sched->worker_at((start + k) % n);
      if (victim == this) continue;
      // A busy worker's timers would be late: run them for it.
      if (run_timers_of(victim))
        if (Fiber* f = local_queue().pop()) return f;
      if (Fiber* f = local_queue().steal_half_from(victim->queue_for_others(), last_round)) return f;
    }
  }
  return nullptr;
}

// A spare leaves its loop when the monitor has asked for one to retire (the
// stuck fiber it stood in for came back). What it holds goes where every
// other worker can take it: its queue to the injector. Its timers stay in
// its heap, which the other workers and the monitor run (monitor.h).
bool Worker::retire_if_unneeded() {
  for (int want = sched->spares_to_retire.load(); want > 0;)
    if (sched->spares_to_retire.compare_exchange_weak(want, want - 1)) {
      if (spinning) stop_spinning();
      bool moved = false;
      while (Fiber* f = local_queue().pop()) {
        sched->injector.push(f);
        moved = true;
      }
      // seq_cst: after our queue is empty, so that a worker that sees us
      // gone (active_workers) finds our fibers in the injector.
      sched->nspares_active.fetch_sub(1);
      // With us gone, every active worker may now be idle: the deadlock
      // check was made by the last of them while we still counted, so wake
      // one to make it again (and to take what we moved).
      if (moved || sched->nidle.load() == sched->active_workers()) sched->wake_idle_worker();
      return true;
    }
  return false;
}

// The find-work loop, step by step. Returns null only when the runtime stops
// or, for a spare, when it retires.
Fiber* Worker::find_runnable() {
  for (;;) {
    // 0. Stopping: the main fiber has returned. A spare no longer needed
    //    leaves here, holding no fiber.
    if (sched->stopping.load(std::memory_order_acquire)) return nullptr;
    if (kind == Kind::kSpare && retire_if_unneeded()) return nullptr;

    // 1. Our timers that are due (a clock read only if any is pending).
    if (timers.next_when() != kNever) {
      int64_t now = now_ns();
      if (timers.next_when() <= now) run_timers(now);
    }

    // 2. Fairness: now and then the injector before the local queue, so a
    //    pair of fibers readying each other cannot starve outside work.
    if (own.until_fairness_turn == 0) {
      own.until_fairness_turn = kInjectorCheckInterval;
      // The same turn polls the network without blocking, so a stream of
      // runnable fibers cannot starve ready I/O. What it readies goes
      // behind the injector, not onto the local queue: under load the
      // local queue overflows into the injector, and fibers the poller
      // readies now must not overtake those readied earlier (Go's sysmon
      // puts polled fibers on its global queue for the same reason).
      poll_network(PollWhen::kAlways, PolledWhere::kBehindInjector);
      if (Fiber* f = take_from_injector()) return f;
    }

    // 3. Local queue, then the injector.
    if (Fiber* f = local_queue().pop()) return f;
    if (Fiber* f = take_from_injector()) return f;

    // 3b. Ready I/O before stealing (Go's netpoll(0) in findrunnable),
    //     unless a worker is blocked in the poller (it gets the events) or
    //     there is nobody to steal from (park_worker polls).
    if (sched->slot_count() > 1 && poll_network(PollWhen::kUnlessSomeoneBlocked)) continue;

    // 4. Steal, if not too many workers are already spinning (at most half
    //    of the busy ones: spinning burns CPU that busy workers could use).
    int busy = sched->active_workers() - sched->nidle.load();
    if (spinning || 2 * sched->nspinning.load() < busy) {
      if (!spinning) {
        spinning = true;
        sched->nspinning.fetch_add(1);
      }
      if (Fiber* f = steal()) return f;
    }

    // 5. Another worker's timer that is due: run it here. Its owner may be
    //    busy, or woken for it and not yet on a CPU, and our sleep would
    //    end at once (we sleep until the earliest timer of any worker):
    //    without this, a worker not allowed to steal would spin through
    //    park_worker, keeping off its CPU the very thread that owns the
    //    timer, for as long as the kernel lets it.
    if (run_others_due_timers()) continue;

    // 6. Nothing: park this worker until woken or a timer is due.
    park_worker();
  }
}

// ---- the idle path (park_worker), in the order argued in scheduler.h ----

// (1) Go on the idle list, unless work arrived in the injector meanwhile
// (then false: look again). Our `spinning` flag is cleared under the same
// lock: once we are on the list a waker may set it again (for the
// nspinning it hands us). (2) Then drop our count in nspinning.
bool Worker::go_idle(bool* was_spinning) {
  Scheduler* s = sched;
  {
    std::lock_guard lock(s->idle_mu);
    if (s->stopping.load() || s->injector.size_approx() != 0) return false;
    wake_word.store(0, std::memory_order_relaxed);
    s->idle_list.push_back(this);
    on_idle_list = true;
    s->nidle.fetch_add(1);  // seq_cst: (1) of the protocol
    *was_spinning = spinning;
    spinning = false;
  }
  if (*was_spinning) s->nspinning.fetch_sub(1);  // seq_cst: (2)
  return true;
}

// (3) A worker that was spinning re-checks every queue: a readier may have
// seen it spinning and woken nobody. Returns true when there is work: the
// worker is then off the idle list again and spinning.
bool Worker::recheck_queues_after_idle(bool was_spinning) {
  if (!was_spinning) return false;
  Scheduler* s = sched;
  bool work = s->injector.size_approx() != 0;
  for (int i = 0, n = s->slot_count(); i < n && !work; ++i) work = !s->worker_at(i)->queue_for_others().empty();
  if (!work) return false;
  std::lock_guard lock(s->idle_mu);
  if (on_idle_list) {
    s->idle_list.erase(std::find(s->idle_list.begin(), s->idle_list.end(), this));
    on_idle_list = false;
    s->nidle.fetch_sub(1);
    spinning = true;  // resume spinning: we go straight back to stealing
    s->nspinning.fetch_add(1);
  }
  // else a waker took us off the list and set `spinning` for us.
  return true;
}

// How long to sleep: until the earliest timer of any worker, or, when
// nothing at all can run, for the deadlock check's grace period. Returns -1
// when we were woken meanwhile (no sleep).
int64_t Worker::sleep_deadline(bool* deadlock_suspect, uint64_t* epoch) {
  Scheduler* s = sched;
  int64_t deadline = s->earliest_timer();
  {
    std::lock_guard lock(s->idle_mu);
    if (!on_idle_list) return -1;  // woken meanwhile
    if (s->detect_deadlock && deadline == kNever && s->nothing_can_run()) {
      // Everything looks asleep. Wait a grace period: a thread outside the
      // runtime that is just now readying a fiber will bump wake_epoch.
      *deadlock_suspect = true;
      *epoch = s->wake_epoch.load();
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
  return deadline;
}

// While fibers wait for I/O, one idle worker sleeps in the poller instead
// of on the futex, until the same deadline (netpoll.h).
void Worker::sleep_until_woken(int64_t deadline, ReadyBatch& io) {
  if (!sleep_in_netpoll(deadline, io)) futex_wait_until_set(&wake_word, deadline);
  parked_until.store(-1, std::memory_order_seq_cst);
}

namespace {

// Go's "all goroutines are asleep" with the dump of what each one waits
// on (debug.cpp), bounded: a server with 100 000 parked fibers would
// otherwise bury the message. Nothing runs, so the dump is exact.
[[noreturn]] void report_deadlock(Scheduler* s) {
  constexpr std::size_t kFibersListed = 50;
  int64_t parked = s->live_fibers();
  std::string dump;
  append_fiber_dump(s, dump, kFibersListed);
  fatal_with(dump.c_str(), "all fibers are asleep - deadlock! (%lld fiber%s parked, nothing can wake %s)",
             (long long)parked, parked == 1 ? "" : "s", parked == 1 ? "it" : "them");
}

}  // namespace

// Off the idle list after the sleep: either a waker took us off already
// (and set `spinning`), or we timed out (a timer is due, the deadlock grace
// ended) or the poller readied fibers, and we take ourselves off.
void Worker::leave_idle_list(bool deadlock_suspect, uint64_t epoch) {
  Scheduler* s = sched;
  std::lock_guard lock(s->idle_mu);
  if (!on_idle_list) return;
  if (deadlock_suspect && s->wake_epoch.load() == epoch && s->nothing_can_run()) report_deadlock(s);
  s->idle_list.erase(std::find(s->idle_list.begin(), s->idle_list.end(), this));
  on_idle_list = false;
  s->nidle.fetch_sub(1);  // seq_cst: part of the readier/parker protocol
}

void Worker::park_worker() {
  bool was_spinning = false;
  if (!go_idle(&was_spinning)) return;
  if (recheck_queues_after_idle(was_spinning)) return;
  // Idle for real: give deep stack pages back while nothing runs here, and
  // surplus stacks to the pool, where the monitor's scavenger reaches them.
  own.stacks.shrink_when_idle();
  own.fibers.shrink_when_idle();
  bool deadlock_suspect = false;
  uint64_t epoch = 0;
  int64_t deadline = sleep_deadline(&deadlock_suspect, &epoch);
  if (deadline < 0) return;
  if (deadline <= now_ns())
    sleeps_already_due.store(sleeps_already_due.load(std::memory_order_relaxed) + 1, std::memory_order_relaxed);
  ReadyBatch io;
  busy_end();
  sleep_until_woken(deadline, io);
  busy_begin();
  leave_idle_list(deadlock_suspect, epoch);
  // Queue what the poller readied, only now that we are off the idle list
  // (a wake-up for these fibers must not pick us).
  queue_polled(io);
}

// A spare's thread: the schedule loop until retired, then the pool until
// reused (loop again) or expired (the thread returns; the monitor joins it).
void Worker::spare_main() {
  for (;;) {
    loop();
    if (sched->stopping.load(std::memory_order_acquire)) break;
    if (!sched->monitor->wait_in_spare_pool(this)) break;
  }
  // release: the monitor that reads it (acquire) joins a finished thread.
  spare_exited.store(true, std::memory_order_release);
}

}  // namespace gort::detail
