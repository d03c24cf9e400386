// scheduler.cpp: booting and stopping the runtime, spawning fibers, making
// them runnable, waking workers. See scheduler.h for the design.
#include "scheduler.h"

#include <dirent.h>
#include <sched.h>
#include <sys/resource.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <memory>
#include <stdexcept>
#include <string>

#include <gort/detail/preempt.h>
#include <gort/runtime.h>

#include "monitor.h"
#include "netpoll.h"
#include "overflow.h"
#include "park.h"
#include "platform.h"
#include "services.h"

namespace gort::detail {

namespace {

std::atomic<Scheduler*> g_sched{nullptr};
TeardownCounts g_last_teardown{0, 0, 0, 0};  // written by run_main's thread after its workers joined

int affinity_cpus() {
  cpu_set_t set;
  if (sched_getaffinity(0, sizeof set, &set) == 0) return std::max(1, CPU_COUNT(&set));
  return 1;
}

// Reads a positive integer (with an optional K/M/G suffix for sizes) from the
// environment; a malformed value is a fatal error, not a silent default.
// Unset or empty: `unset`. Zero is accepted only where `zero_ok`.
enum class Suffix : uint8_t { kNone, kSize };
uint64_t env_number(const char* name, Suffix suffix, uint64_t unset = 0, bool zero_ok = false) {
  bool size_suffix = suffix == Suffix::kSize;
  const char* v = std::getenv(name);
  if (v == nullptr || *v == '\0') return unset;
  char* end = nullptr;
  errno = 0;
  unsigned long long n = std::strtoull(v, &end, 10);
  uint64_t mult = 1;
  if (size_suffix && end && *end) {
    switch (*end) {
      case 'k':
      case 'K':
        mult = 1024;
        ++end;
        break;
      case 'm':
      case 'M':
        mult = 1024 * 1024;
        ++end;
        break;
      case 'g':
      case 'G':
        mult = 1024 * 1024 * 1024;
        ++end;
        break;
      default: break;
    }
  }
  if (errno != 0 || end == v || *end != '\0' || (n == 0 && !zero_ok) || n > (UINT64_MAX >> 30))
    fatal("%s=\"%s\": expected a %s integer%s", name, v, zero_ok ? "non-negative" : "positive",
          size_suffix ? " (optional K/M/G suffix)" : "");
  return n * mult;
}

// First code a fiber runs. It was switched to either by the schedule loop
// (t.data is the worker, t.fctx the loop's context) or directly by a fiber
// switching out (switch_out), which for a fresh fiber cannot use ontop (a
// fresh context has no resume point for ontop's result) and instead leaves
// its request in entry_request for us to carry out. No suspension has
// happened yet in this frame, so the thread's current worker is valid.
void fiber_entry(Transfer t) {
  Worker* w = current_worker();
  Fiber* f = w->current.load(std::memory_order_relaxed);
  if (f->entry_request != nullptr) {
    auto* req = static_cast<SwitchRequest*>(f->entry_request);
    f->entry_request = nullptr;
    Fiber* from = req->from;
    from->ctx = t.fctx;
    annotate_switch_end(&f->san, &w->own.sched_san);
    w->finish_switch(from, req);
  } else {
    w->own.sched_ctx = t.fctx;
    annotate_switch_end(&f->san, &w->own.sched_san);
  }
  f->started = true;
  // No handler around the task: an exception that escapes it finds none on
  // this stack, so __cxa_throw calls std::terminate with every frame still
  // there, and the runtime's terminate handler (debug.cpp) reports it with
  // the backtrace of the throw, as Go reports a panic. A catch here would
  // unwind the stack first and leave only this frame to show.
  f->run_task(f->task);
  f->drop_task(f->task);
  SwitchRequest exit{SwitchRequest::kExit};
  Worker* w_exit = current_worker();
  switch_out<SwitchRequest::kExit>(w_exit, f, &exit);
  __builtin_unreachable();
}

}  // namespace

const char* state_name(FiberState s) {
  switch (s) {
    case FiberState::kRunnable: return "runnable";
    case FiberState::kRunning: return "running";
    case FiberState::kParked: return "parked";
    case FiberState::kDead: return "dead";
  }
  return "?";
}

void Fiber::bad_transition(FiberState actual, FiberState from, FiberState to) {
  fatal("fiber %llu: state change %s -> %s, but it is %s (a fiber was woken twice or while running)",
        (unsigned long long)id, state_name(from), state_name(to), state_name(actual));
}

Scheduler* current_scheduler() { return g_sched.load(std::memory_order_acquire); }

TeardownCounts last_teardown() { return g_last_teardown; }

Scheduler::Scheduler(int n, int max_threads_, std::size_t stack, bool deadlock)
    : nworkers(n),
      max_threads(max_threads_),
      default_stack(stack),
      detect_deadlock(deadlock),
      slots(new std::unique_ptr<Worker>[std::size_t(max_threads_)]) {
  for (int i = 0; i < n; ++i) slots[std::size_t(i)] = std::make_unique<Worker>(this, i, Worker::Kind::kWorker, stack);
  nslots.store(n, std::memory_order_release);
  idle_list.reserve(std::size_t(n));
}

Scheduler::~Scheduler() {
  // Fibers still queued when the main fiber returned are abandoned, as Go
  // abandons goroutines at exit. Those that never ran get their task
  // destroyed; those that ran are simply dropped with their slabs.
  auto drop = [](Fiber* f) {
    if (f->run_task != nullptr && !f->started) f->drop_task(f->task);
    f->san.destroy();
  };
  Fiber* f;
  while (injector.pop(f)) drop(f);
  // Every worker thread has returned: the scheduler owns their queues now.
  for (int i = 0, n = slot_count(); i < n; ++i)
    while ((f = worker_at(i)->local_queue().pop()) != nullptr) drop(f);
  // The poller and every descriptor go with the runtime. Fibers
  // parked on them were abandoned above like any other.
  destroy_netpoll(this);
}

void Scheduler::inject(Fiber* f) { injector.push(f); }

void Scheduler::ready(Fiber* f, RunNext where) {
  Worker* w = current_worker();
  if (w != nullptr && w->sched == this) {
    if (!w->push_local(f, where)) return;
  } else {
    inject(f);
  }
  wake_idle_worker();
}

void Scheduler::wake_idle_worker() {
  // (b) of the readier/parker protocol in scheduler.h. The fiber was
  // published with a release store (run queue) or inside moodycamel's queue;
  // a release store followed by a load is free to be reordered (x86 store
  // buffers do exactly that), so without this fence the readier could read a
  // stale "someone is spinning" while the last spinner reads a stale "queues
  // empty", and both would sleep. Pairs with the seq_cst read-modify-writes
  // on nidle/nspinning in Worker::park_worker.
  std::atomic_thread_fence(std::memory_order_seq_cst);
  if (nidle.load() == 0 || nspinning.load() != 0) return;
  int expected = 0;
  if (!nspinning.compare_exchange_strong(expected, 1)) return;  // someone else is waking one
  Worker* w = nullptr;
  {
    std::lock_guard lock(idle_mu);
    if (!idle_list.empty()) {
      w = idle_list.back();
      idle_list.pop_back();
      w->on_idle_list = false;
      nidle.fetch_sub(1);
      w->spinning = true;  // the nspinning we just took is now w's
      wake_epoch.fetch_add(1);
      w->wake_word.store(1, std::memory_order_release);
    }
  }
  if (w == nullptr) {
    nspinning.fetch_sub(1);
    return;
  }
  w->wake();  // also breaks w out of the poller if it sleeps there
}

void Scheduler::wake_worker_for_timer(int64_t when) {
  // A worker parked until later than `when` must re-compute its deadline.
  // The fence pairs with park_worker's: the heap's next_when (written by
  // add()) is ordered before our reads of parked_until.
  std::atomic_thread_fence(std::memory_order_seq_cst);
  for (int i = 0, n = slot_count(); i < n; ++i) {
    Worker* w = worker_at(i);
    int64_t until = w->parked_until.load(std::memory_order_seq_cst);
    if (until >= 0 && until > when) {
      {
        std::lock_guard lock(idle_mu);
        wake_epoch.fetch_add(1);
        w->wake_word.store(1, std::memory_order_release);
      }
      w->wake();  // a worker in the poller re-computes its deadline too
      return;
    }
  }
}

void Scheduler::stop() {
  stopping.store(true, std::memory_order_release);
  std::lock_guard lock(idle_mu);
  wake_epoch.fetch_add(1);
  for (int i = 0, n = slot_count(); i < n; ++i) {
    Worker* w = worker_at(i);
    w->stopping.store(true, std::memory_order_relaxed);
    w->wake_word.store(1, std::memory_order_release);
    w->wake();  // futex or poller, wherever it sleeps (a pooled spare: its futex)
  }
}

int64_t Scheduler::earliest_timer() const {
  int64_t when = kNever;
  for (int i = 0, n = slot_count(); i < n; ++i) when = std::min(when, worker_at(i)->timers.next_when());
  return when;
}

// Threads in this process (/proc/self/task), or -1 if unknown.
static int process_threads() {
  DIR* d = opendir("/proc/self/task");
  if (d == nullptr) return -1;
  int n = 0;
  while (dirent* e = readdir(d))
    if (e->d_name[0] != '.') ++n;
  closedir(d);
  return n;
}

int64_t Scheduler::live_fibers() const {
  // Exits first, then spawns: a fiber's spawn happens before its exit, so
  // an exit read here (acquire) has its spawn in the counts read after it,
  // the spawning worker's slot included (slot_count read again). A fiber
  // that exits or spawns meanwhile is counted live or not at all.
  int64_t live = 0;
  for (int i = 0, n = slot_count(); i < n; ++i) live -= worker_at(i)->exited.load(std::memory_order_acquire);
  live += spawned_outside.load(std::memory_order_acquire);
  for (int i = 0, n = slot_count(); i < n; ++i) live += worker_at(i)->spawned.load(std::memory_order_acquire);
  return live;
}

bool Scheduler::nothing_can_run() {
  if (nidle.load() != active_workers() || stopping.load()) return false;
  if (live_fibers() <= 0 || external_wakers.load() > 0) return false;
  if (injector.size_approx() != 0 || earliest_timer() != kNever) return false;
  for (int i = 0, n = slot_count(); i < n; ++i)
    if (!worker_at(i)->queue_for_others().empty()) return false;
  // Another thread of the application could still ready a fiber (unlock a
  // Mutex, call done(), spawn): then this is not provably a deadlock. The
  // runtime's own: the workers, the monitor, spares, the blocking pool's
  // helpers; TSan runs one background thread of its own.
  int expected = nworkers + 1 + spare_threads.load() + helper_threads.load();
#if GORT_TSAN
  expected += 1;
#endif
  int threads = process_threads();
  return threads >= 0 && threads <= expected;
}

// ---- time slices ----

__attribute__((noinline, cold)) void preempt(Worker* w) {
  w->preempt_flag.store(false, std::memory_order_relaxed);
  // Never from on_worker_stack (the fiber is not on its own stack) or the
  // schedule loop itself (timers fire there): the monitor asks again.
  Fiber* self = w->current.load(std::memory_order_relaxed);
  if (w->own.in_worker_stack || self == nullptr) return;
  SwitchRequest req{SwitchRequest::kPreempt};
  switch_out<SwitchRequest::kPreempt>(w, self, &req);
}

void preemption_point() {
  if (Worker* w = current_worker(); w != nullptr) preemption_point_on(w);
}

bool yield_if_others_queued() {
  Worker* w = current_worker();
  if (w == nullptr || w->own.in_worker_stack) return false;
  Fiber* self = w->current.load(std::memory_order_relaxed);
  if (self == nullptr || w->queue_for_others().empty()) return false;
  SwitchRequest req{SwitchRequest::kYield};
  switch_out<SwitchRequest::kYield>(w, self, &req);
  return true;
}

__attribute__((noinline, cold)) void preempt_current() {
  if (Worker* w = current_worker(); w != nullptr) preempt(w);
}

// ---- spawning ----

namespace {

// Gives f's record back: to this worker's cache, or to the pool from any
// other thread. Marked dead first, for the fiber dump (debug.cpp).
void free_record(Scheduler* s, Fiber* f) {
  f->state.store(FiberState::kDead, std::memory_order_relaxed);
  f->~Fiber();
  Worker* w = current_worker();
  if (w != nullptr && w->sched == s) {
    w->own.fibers.put(f);
  } else {
    s->fiber_pool.release(f);
  }
}

char* align_down(char* p, std::size_t a) {
  return reinterpret_cast<char*>(reinterpret_cast<uintptr_t>(p) & ~(uintptr_t(a) - 1));
}

// The fiber runs on its stack (f->stack, bound) from sp down.
void make_fiber_context(Fiber* f, char* sp) {
  std::size_t usable = std::size_t(sp - f->stack.usable_bottom());
  f->ctx = make_context(sp, usable, fiber_entry);
  f->san.init_fiber(f->stack.usable_bottom(), usable);
}

}  // namespace

Fiber* spawn_prepare(const SpawnOptions& opts, std::size_t task_size, std::size_t task_align, void** task_storage) {
  Scheduler* s = current_scheduler();
  if (s == nullptr || s->stopping.load(std::memory_order_relaxed))
    throw std::logic_error("gort::spawn: no gort runtime is running (call gort::run first)");
  if (opts.stack_size > kMaxStackSize)
    throw std::invalid_argument("gort::spawn: stack_size " + std::to_string(opts.stack_size) +
                                " exceeds the 1 GiB maximum");
  std::size_t size = opts.stack_size ? opts.stack_size : s->default_stack;
  Worker* w = current_worker();
  bool on_worker = w != nullptr && w->sched == s;
  auto* f = new (on_worker ? w->own.fibers.get() : s->fiber_pool.allocate()) Fiber;
  f->id = s->next_fiber_id.fetch_add(1, std::memory_order_relaxed);
  f->name = opts.name;
  f->stack_usable = size;
  if (char* tp = record_task_space(f, task_size, task_align)) {
    // The usual case: the stack is bound when the fiber first runs.
    f->task = tp;
    *task_storage = tp;
    return f;
  }
  // A task too large for the record goes at the top of a stack bound now.
  Stack st;
  try {
    st = on_worker ? w->own.stacks.get(size) : s->stack_pool.allocate(size);
  } catch (...) {
    free_record(s, f);
    throw;
  }
  char* tp = align_down(st.top() - task_size, std::max<std::size_t>(task_align, 16));
  char* sp = align_down(tp, 64);
  if (sp - st.usable_bottom() < 4096) {
    s->stack_pool.release(st);
    free_record(s, f);
    throw std::length_error("gort::spawn: the fiber's arguments do not fit its stack");
  }
  f->task = tp;
  f->stack = st;
  make_fiber_context(f, sp);
  *task_storage = tp;
  return f;
}

__attribute__((noinline)) void bind_stack_on_first_run(Worker* w, Fiber* f) {
  try {
    f->stack = w->own.stacks.get(f->stack_usable);
  } catch (const std::bad_alloc&) {
    // Nobody to throw to: the spawner has moved on. Go does the same.
    fatal("fiber %llu: no memory for its stack (%zu KiB): the kernel refused the reservation",
          (unsigned long long)f->id, f->stack_usable / 1024);
  }
  // A stack's top is page-aligned: the first frame goes right below it.
  make_fiber_context(f, f->stack.top());
}

bool bind_stack_from_cache(Worker* w, Fiber* f) {
  if (!w->own.stacks.try_get(f->stack_usable, &f->stack)) return false;
  make_fiber_context(f, f->stack.top());
  return true;
}

void spawn_abort(Fiber* f) {
  Scheduler* s = current_scheduler();
  Stack st = f->stack;
  f->san.destroy();
  // Never queued, so never seen by anyone but the fiber dump (debug.cpp),
  // which skips a dead record: free_record marks it so.
  free_record(s, f);
  if (!st) return;
  Worker* w = current_worker();
  if (w != nullptr && w->sched == s) {
    w->own.stacks.put(st);
  } else {
    s->stack_pool.release(st);
  }
}

void spawn_commit(Fiber* f, void (*run)(void*), void (*drop)(void*)) {
  Scheduler* s = current_scheduler();
  f->run_task = run;
  f->drop_task = drop;
  // Like Go's newproc: the new fiber goes in the spawner's next slot.
  // Scheduler::ready's worker branch, inlined: the worker is needed for the
  // count anyway, and a fiber that spawns in a loop gives way when its slice
  // ran out (nothing here suspends, so w is still ours).
  if (Worker* w = current_worker(); w != nullptr && w->sched == s) {
    w->bump(w->spawned);
    if (w->push_local(f, RunNext::kYes)) s->wake_idle_worker();
    preemption_point_on(w);
    return;
  }
  s->spawned_outside.fetch_add(1);  // seq_cst, as the workers' counts are released
  s->ready(f, RunNext::kYes);
  preemption_point();
}

// ---- run ----

int run_main(const Config& config, void (*body)(void*), void* arg) {
  int n = config.workers;
  if (n < 0) throw std::invalid_argument("gort::Config::workers must be >= 0");
  if (n == 0) n = gort::default_workers();
  if (n > 1024) throw std::invalid_argument("gort: at most 1024 workers");
  // Go's default limit on threads (debug.SetMaxThreads); here it bounds the
  // workers and the spares the monitor starts for stuck ones.
  uint64_t max_threads = env_number("GORT_MAX_THREADS", Suffix::kNone, 10'000);
  if (max_threads > 100'000) fatal("GORT_MAX_THREADS=%llu: at most 100000", (unsigned long long)max_threads);
  if (max_threads < uint64_t(n))
    fatal("GORT_MAX_THREADS=%llu is below the %d workers (GORT_PROCS): no thread could run them all",
          (unsigned long long)max_threads, n);
  MonitorConfig monitor_config{
      int64_t(env_number("GORT_STUCK_WARN_MS", Suffix::kNone, 100, /*zero_ok=*/true)) * 1'000'000,
      int64_t(env_number("GORT_SCAVENGE_MS", Suffix::kNone, kDefaultScavengePeriodNs / 1'000'000,
                         /*zero_ok=*/true)) *
          1'000'000};
  std::size_t stack = config.stack_size;
  if (stack == 0) stack = std::size_t(env_number("GORT_STACK_SIZE", Suffix::kSize));
  if (stack == 0) stack = kDefaultStackSize;
  if (stack < kMinStackSize || stack > kMaxStackSize)
    throw std::invalid_argument("gort: stack size " + std::to_string(stack) + " out of range [16 KiB, 1 GiB]");

  // Go raises the soft open-files limit to the hard limit at start; so do we.
  rlimit rl;
  if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
    rl.rlim_cur = rl.rlim_max;
    setrlimit(RLIMIT_NOFILE, &rl);
  }
  install_overflow_handler();

  Scheduler sched(n, int(max_threads), stack, config.detect_deadlock);
  sched.monitor = std::make_unique<Monitor>(&sched, monitor_config);
  Scheduler* expected = nullptr;
  if (!g_sched.compare_exchange_strong(expected, &sched))
    throw std::logic_error("gort::run: a gort runtime is already running in this process");

  struct Main {
    void (*body)(void*);
    void* arg;
    Scheduler* sched;
  } main_task{body, arg, &sched};
  SpawnOptions opts;
  opts.name = "main";
  void* storage = nullptr;
  Fiber* f;
  try {
    f = spawn_prepare(opts, sizeof(Main*), alignof(Main*), &storage);
  } catch (...) {
    g_sched.store(nullptr);
    throw;
  }
  *static_cast<Main**>(storage) = &main_task;
  spawn_commit(
      f,
      [](void* p) {
        Main* m = *static_cast<Main**>(p);
        m->body(m->arg);
        m->sched->stop();
      },
      [](void*) {});

  // Before any worker can run a fiber: a fiber may throw, or raise
  // SIGQUIT, at once (the monitor, started below, makes the dump).
  install_terminate_handler();
  install_quit_handler();
  for (int i = 1; i < n; ++i) {
    Worker* w = sched.worker_at(i);
    w->thread = std::thread([w] { w->loop(); });
  }
  sched.monitor->start();
  sched.worker_at(0)->loop();
  for (int i = 1; i < n; ++i) sched.worker_at(i)->thread.join();
  sched.monitor->stop_and_join();  // then every spare
  remove_terminate_handler();
  remove_quit_handler();
  stop_runtime_services();  // blocking pool, pending runtime timers (services.h)
  for (int i = 0, slots = sched.slot_count(); i < slots; ++i) {
    sched.worker_at(i)->own.stacks.flush();
    sched.worker_at(i)->own.fibers.flush();
  }
  int64_t sleeps_already_due = 0;
  for (int i = 0, slots = sched.slot_count(); i < slots; ++i)
    sleeps_already_due += sched.worker_at(i)->sleeps_already_due.load(std::memory_order_relaxed);
  g_last_teardown =
      TeardownCounts{sched.live_fibers(), sched.stack_pool.in_use(),
                     int64_t(sched.fiber_pool.carved()) - int64_t(sched.fiber_pool.free_count()), sleeps_already_due};
  g_sched.store(nullptr, std::memory_order_release);
  return 0;
}

}  // namespace gort::detail

namespace gort {

void yield() {
  detail::Worker* w = detail::current_worker();
  detail::Fiber* self = w != nullptr ? w->current.load(std::memory_order_relaxed) : nullptr;
  if (self == nullptr) {
    sched_yield();
    return;
  }
  detail::SwitchRequest req{detail::SwitchRequest::kYield};
  detail::switch_out<detail::SwitchRequest::kYield>(w, self, &req);
}

bool in_fiber() { return detail::current_fiber() != nullptr; }

uint64_t fiber_id() {
  detail::Fiber* f = detail::current_fiber();
  return f ? f->id : 0;
}

int default_workers() {
  int n = int(detail::env_number("GORT_PROCS", detail::Suffix::kNone));
  return n > 0 ? n : detail::affinity_cpus();
}

int worker_count() {
  detail::Scheduler* s = detail::current_scheduler();
  return s ? s->nworkers : 0;
}

Stats stats() {
  detail::Scheduler* s = detail::current_scheduler();
  if (s == nullptr) return Stats{};
  Stats st{s->live_fibers(), s->stack_pool.in_use(), s->stack_pool.slab_count(),
           s->stack_pool.guard_mode() == detail::GuardMode::kGuardInstall};
  for (int i = 0, n = s->slot_count(); i < n; ++i)
    st.preemptions += s->worker_at(i)->preemptions.load(std::memory_order_relaxed);
  st.stuck_episodes = s->monitor->stuck_episodes();
  st.spare_workers = s->nspares_active.load();
  st.spare_threads = s->spare_threads.load();
  return st;
}

}  // namespace gort
