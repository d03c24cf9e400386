// monitor.cpp: see monitor.h for the design.
#include "monitor.h"

#include <algorithm>
#include <cstdio>
#include <mutex>

#include "netpoll.h"
#include "platform.h"
#include "scheduler.h"

namespace gort::detail {

namespace {
constexpr int64_t kMinDelayNs = 20'000;      // Go's sysmon: 20 us
constexpr int64_t kMaxDelayNs = 10'000'000;  // ... up to 10 ms
constexpr int kQuietRoundsBeforeBackoff = 50;
}  // namespace

Monitor::Monitor(Scheduler* s, MonitorConfig config) : sched_(s), config_(config) {}

Monitor::~Monitor() {
  if (thread_.joinable()) thread_.join();
}

void Monitor::start() {
  thread_ = std::thread([this] { run(); });
}

void Monitor::wake() {
  wake_word_.store(1, std::memory_order_release);
  futex_wake(&wake_word_, 1);
}

void Monitor::stop_and_join() {
  wake();
  if (thread_.joinable()) thread_.join();
  // No new spare can start now. Scheduler::stop woke every slot; a spare
  // that was still running its loop sees `stopping` there or in the pool.
  for (int i = sched_->nworkers, n = sched_->slot_count(); i < n; ++i) {
    Worker* w = sched_->worker_at(i);
    w->stopping.store(true, std::memory_order_relaxed);  // a spare started after Scheduler::stop looked
    if (w->thread.joinable()) {
      w->thread.join();
      sched_->spare_threads.fetch_sub(1);
    }
  }
}

void Monitor::sleep_for_ns(int64_t ns) {
  futex_wait_until_set(&wake_word_, now_ns() + ns);
  wake_word_.store(0, std::memory_order_relaxed);
}

// Every active worker is idle: nothing can hold a worker now. Sleep
// kDeepSleepNs (run() comes back while they stay idle, joining spare
// threads that expired meanwhile).
// Workers do not wake us when they leave the idle list: a server going idle
// and busy thousands of times a second would pay a futex wake and a switch
// to this thread each time. A fiber that starts holding its worker right
// after we went to sleep is noticed up to kDeepSleepNs late.
void Monitor::deep_sleep() {
  if (wake_word_.load(std::memory_order_acquire) == 0) futex_wait(&wake_word_, 0, now_ns() + kDeepSleepNs);
  wake_word_.store(0, std::memory_order_relaxed);
}

void Monitor::run() {
  int64_t delay = kMinDelayNs;
  int quiet = 0;
  while (!sched_->stopping.load(std::memory_order_acquire)) {
    dump_if_quit_requested(sched_);  // SIGQUIT: the handler only sets a flag (debug.cpp)
    scavenge_if_due(now_ns());
    if (sched_->nidle.load() == sched_->active_workers() && sched_->nspares_active.load() == 0) {
      join_exited_spares();
      deep_sleep();
      delay = kMinDelayNs;
      quiet = 0;
      continue;
    }
    sleep_for_ns(delay);
    if (sched_->stopping.load(std::memory_order_acquire)) break;
    if (round(now_ns())) {
      delay = kMinDelayNs;
      quiet = 0;
    } else if (++quiet > kQuietRoundsBeforeBackoff) {
      delay = std::min(2 * delay, kMaxDelayNs);
    }
  }
}

// The first period starts with the monitor: a stack must go unused for a
// whole period between two scavenges before it is given back.
void Monitor::scavenge_if_due(int64_t now) {
  if (config_.scavenge_period_ns <= 0) return;
  if (next_scavenge_ == 0) next_scavenge_ = now + config_.scavenge_period_ns;
  if (now < next_scavenge_) return;
  // Stacks unused for a whole period mean that a peak has passed: the heap
  // memory its fibers used (connection buffers and the like) is free now
  // too, and goes back with them. Only then: a trim walks the allocator's
  // free lists under its locks.
  std::size_t given_back = sched_->stack_pool.scavenge();
  // Likewise the pages of poll descriptors no connection used for a
  // period, and those of fiber records.
  if (NetPoll* np = netpoll_of(sched_)) given_back += np->scavenge();
  given_back += sched_->fiber_pool.scavenge();
  for (int i = 0; i < sched_->slot_count(); ++i) sched_->worker_at(i)->timers.shrink();
  if (given_back > 0) release_free_heap_memory();
  next_scavenge_ = now + config_.scavenge_period_ns;
}

// One sample of every slot, then the decisions that need all of them.
bool Monitor::round(int64_t now) {
  Scheduler* s = sched_;
  int n = s->slot_count();
  if (int(watch_.size()) < n) watch_.resize(std::size_t(n));
  bool acted = false;
  int nstuck = 0;
  bool work_on_stuck = false;
  for (int i = 0; i < n; ++i) acted |= watch_worker(i, now, &nstuck, &work_on_stuck);

  // Retired spares' due timers: their owner is gone, and idle workers run
  // them only when they look (find_runnable): with all of them busy, nobody would.
  for (int i = s->nworkers; i < n; ++i) {
    Worker* w = s->worker_at(i);
    int64_t when = w->timers.next_when();
    if (when <= now && watch_[std::size_t(i)].switches % 2 == 0) acted |= w->timers.run_expired(now) > 0;
  }
  acted |= poll_network(now);

  // Spares: one per stuck worker at most, and only while work waits that
  // no free worker can take. A stuck worker's next slot wakes nobody
  // (Scheduler::ready): if a worker is idle, wake it to steal.
  int active = s->nspares_active.load();
  s->spares_to_retire.store(std::max(0, active - nstuck));
  if (nstuck > 0) {
    bool waiting = work_on_stuck || s->injector.size_approx() != 0;
    bool free_worker = s->nidle.load() > 0 || s->nspinning.load() > 0;
    if (waiting && s->nidle.load() > 0) s->wake_idle_worker();
    if (waiting && !free_worker && active < nstuck) {
      s->spares_to_retire.store(0);
      start_spare();
      acted = true;
    }
  }
  join_exited_spares();
  return acted;
}

// Samples one slot's progress mark: asks for a yield after a time slice,
// counts and reports a stuck episode, runs a stuck worker's due timers.
bool Monitor::watch_worker(int slot, int64_t now, int* nstuck, bool* work_on_stuck) {
  Worker* w = sched_->worker_at(slot);
  Watch& watch = watch_[std::size_t(slot)];
  uint64_t mark = w->switches.load(std::memory_order_relaxed);
  if (mark != watch.switches || watch.since == 0) {
    if (watch.stuck) w->stuck.store(false, std::memory_order_relaxed);
    watch = Watch{mark, now, false, false};
    return false;
  }
  if (mark % 2 == 0) return false;  // in its schedule loop, or idle: no fiber holds it
  int64_t held = now - watch.since;
  bool acted = false;
  if (held >= kTimeSlice && !w->preempt_flag.load(std::memory_order_relaxed)) {
    w->preempt_flag.store(true, std::memory_order_relaxed);
    acted = true;
  }
  if (held < kTimeSlice + kStuckAfter) return acted;
  ++*nstuck;
  if (!watch.stuck) {
    watch.stuck = true;
    w->stuck.store(true, std::memory_order_relaxed);
    episodes_.fetch_add(1, std::memory_order_relaxed);
    acted = true;
  }
  if (!w->queue_for_others().empty()) *work_on_stuck = true;
  if (w->timers.next_when() <= now && w->timers.run_expired(now) > 0) acted = true;
  if (config_.stuck_warn_ns > 0 && held >= config_.stuck_warn_ns && !watch.warned) {
    watch.warned = true;
    warn(w, mark, held);
  }
  return acted;
}

// The fiber is read through Worker::current (acquire: its id and name were
// written before it was first queued) and trusted only if the mark did not
// move meanwhile: then it was running all along, so it was alive. If it
// returned meanwhile its block may be re-made for a new fiber under the
// reads: racy_id/racy_name, whose values are then discarded.
void Monitor::warn(Worker* w, uint64_t mark, int64_t held_ns) {
  Fiber* f = w->current.load(std::memory_order_acquire);
  if (f == nullptr) return;
  uint64_t id = racy_id(f);
  const char* name = racy_name(f);
  if (w->switches.load(std::memory_order_acquire) != mark) return;
  bool spare = sched_->nspares_active.load() > 0;
  std::fprintf(stderr,
               "gort: fiber %llu%s%s%s has held %s %d for %lld ms without a runtime call "
               "(a blocking system call or a long loop); %s runs the other fibers meanwhile. "
               "Wrap blocking calls in gort::blocking(), or call gort::yield() in long loops "
               "(GORT_STUCK_WARN_MS=0 silences this).\n",
               (unsigned long long)id, name ? " \"" : "", name ? name : "", name ? "\"" : "",
               w->kind == Worker::Kind::kSpare ? "spare worker" : "worker", w->index, (long long)(held_ns / 1'000'000),
               spare ? "a spare worker" : "another worker");
  std::fflush(stderr);
}

// Go's sysmon: if nobody has polled for a while, poll without blocking and
// hand what is ready to the workers through the injector.
bool Monitor::poll_network(int64_t now) {
  NetPoll* np = netpoll_of(sched_);
  if (np == nullptr || !np->has_waiters() || np->someone_blocked_in_poll()) return false;
  uint64_t polls = np->poll_count();
  if (polls != polls_seen_) {
    polls_seen_ = polls;
    polls_seen_at_ = now;
    return false;
  }
  if (now - polls_seen_at_ < kNetpollStale) return false;
  ReadyBatch io;
  np->poll(0, io);
  polls_seen_ = np->poll_count();
  polls_seen_at_ = now;
  if (io.n == 0) return false;
  sched_->injector.push_batch(io.fibers, std::size_t(io.n));
  np->remove_waiters(io.n);  // after publishing them: the deadlock check must never see them nowhere
  sched_->wake_idle_worker();
  return true;
}

void Monitor::start_spare() {
  Scheduler* s = sched_;
  Worker* pooled = nullptr;
  {
    std::lock_guard lock(s->idle_mu);
    if (!s->spare_pool.empty()) {
      pooled = s->spare_pool.back();
      s->spare_pool.pop_back();
    }
  }
  s->nspares_active.fetch_add(1);
  if (pooled != nullptr) {
    pooled->wake_word.store(1, std::memory_order_release);
    futex_wake(&pooled->wake_word, 1);
    return;
  }
  // A slot whose thread expired is reused with a new thread; else a new slot.
  Worker* w = nullptr;
  for (int i = s->nworkers, n = s->slot_count(); i < n && w == nullptr; ++i)
    if (!s->worker_at(i)->thread.joinable()) w = s->worker_at(i);
  if (w == nullptr) {
    int slot = s->slot_count();
    if (slot >= s->max_threads)
      fatal(
          "%d threads are running fibers and %d of them are stuck: GORT_MAX_THREADS=%d allows no "
          "spare worker more (fibers blocked in system calls or loops without a runtime call; wrap "
          "blocking calls in gort::blocking(), or raise GORT_MAX_THREADS)",
          s->active_workers() - 1, s->nspares_active.load(), s->max_threads);
    s->slots[std::size_t(slot)] = std::make_unique<Worker>(s, slot, Worker::Kind::kSpare, s->default_stack);
    w = s->worker_at(slot);
    s->nslots.store(slot + 1, std::memory_order_release);  // worker_at's acquire
  }
  s->spare_threads.fetch_add(1);  // before the thread exists: the deadlock check errs towards "not a deadlock"
  w->thread = std::thread([w] { w->spare_main(); });
}

// Joins spare threads that expired in the pool. If every worker is idle, one
// is woken to re-make the deadlock check, which counted that thread.
void Monitor::join_exited_spares() {
  Scheduler* s = sched_;
  bool joined = false;
  for (int i = s->nworkers, n = s->slot_count(); i < n; ++i) {
    Worker* w = s->worker_at(i);
    // acquire: pairs with spare_main's release; the thread is done with w.
    if (w->thread.joinable() && w->spare_exited.load(std::memory_order_acquire)) {
      w->thread.join();
      w->spare_exited.store(false, std::memory_order_relaxed);
      s->spare_threads.fetch_sub(1);
      joined = true;
    }
  }
  if (joined && s->nidle.load() == s->active_workers()) s->wake_idle_worker();
}

bool Monitor::wait_in_spare_pool(Worker* w) {
  Scheduler* s = sched_;
  w->own.stacks.flush();  // a pooled spare holds no stacks
  w->own.fibers.flush();  // nor records
  {
    std::lock_guard lock(s->idle_mu);
    // Under idle_mu, as Scheduler::stop sets every wake_word: either we see
    // `stopping` here or its wake reaches us in the pool.
    if (s->stopping.load()) return false;
    w->wake_word.store(0, std::memory_order_relaxed);
    s->spare_pool.push_back(w);
  }
  futex_wait_until_set(&w->wake_word, now_ns() + kSpareIdleNs);
  std::lock_guard lock(s->idle_mu);
  auto it = std::find(s->spare_pool.begin(), s->spare_pool.end(), w);
  if (it != s->spare_pool.end()) {  // expired, or woken by stop: leave the pool and exit
    s->spare_pool.erase(it);
    return false;
  }
  return !s->stopping.load();  // start_spare took us: run the loop again
}

}  // namespace gort::detail
