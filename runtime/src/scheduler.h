// scheduler.h: workers and the scheduler that owns them (M:N, Go's design).
//
// Design (after the comment at the top of Go's runtime/proc.go)
//  * One Worker per CPU in the process's affinity mask (GORT_PROCS or
//    Config::workers override). A worker is a kernel thread that runs a
//    schedule loop on its own stack and switches into fibers. The thread that
//    calls gort::run() becomes worker 0.
//  * Each worker has a bounded RunQueue (ring + `next` slot, run_queue.h).
//    Work arriving from outside the workers (another thread, overflow of a
//    full ring, fibers whose time slice ran out) goes through the injector
//    (injector.h: moodycamel ConcurrentQueue).
//  * A worker out of local work takes from the injector, then steals half of
//    a random victim's ring. At most half of the busy workers spin (look for
//    work) at once; the rest park on a futex. Making a fiber runnable wakes
//    an idle worker only when no worker is spinning, because a spinning
//    worker will find the fiber (Go's wakep). A spinning worker that finds
//    work and was the last spinner wakes another, so ready work is never
//    left with every other worker asleep.
//  * Each worker has a TimerHeap. An idle worker sleeps until the earliest
//    deadline of any heap, and before it sleeps runs any other worker's
//    expired timers (whether that worker is busy, retired or itself just
//    woken), so that no deadline it sleeps until has already passed.
//  * Network poller (netpoll.h): while fibers wait for I/O, one idle worker
//    sleeps in the poller (epoll_wait) instead of on its futex, until the
//    same deadline; the others sleep on their futex. Busy workers poll
//    without blocking when their local queue is empty and every 61st
//    schedule. Every wake path goes through Worker::wake, which both
//    futex-wakes the worker and interrupts the poller if the worker sleeps
//    there, so the argument below holds for either kind of sleep.
//  * The monitor (monitor.h, Go's sysmon) watches each worker's progress
//    mark: a fiber that holds its worker for a time slice is asked to yield
//    at its next runtime call; a worker whose fiber makes no runtime call
//    (a blocking system call, a long computation) is stuck, and a spare
//    worker runs the rest meanwhile. Spares live in `slots` after the
//    workers and work like them; while any is active, more threads than
//    GORT_PROCS run fibers.
//  * When every active worker is idle, no timer is pending, nothing outside
//    the workers is registered as able to wake a fiber (external_wakers:
//    blocking calls in flight, fibers waiting on the poller), the process
//    has no thread besides the runtime's own (any other thread could still
//    wake a fiber), and live fibers remain, the runtime reports "all fibers
//    are asleep - deadlock!" and exits 2. The last worker to go idle makes
//    the check, then re-makes it after a grace period to let in-flight
//    wake-ups land. A running or stuck fiber keeps its worker off the idle
//    list, so it is never taken for a deadlock.
//
// Why no wake-up is lost between a readier and a parking worker (Go's
// "delicate dance" in findrunnable): the parking worker (1) puts itself on
// the idle list (nidle++), then (2) drops spinning (nspinning--), then (3)
// if it was spinning, re-checks every run queue and the injector. The
// readier (a) publishes the fiber in a queue, then (b) reads nidle and
// nspinning. All four are sequentially consistent, so either (3) sees the
// fiber or (b) sees nidle > 0 and nspinning == 0 and wakes a worker. A
// readier skips the wake-up only because some worker is spinning; a worker
// that was not spinning was never that reason, so it owes no re-check (as
// in Go, findrunnable re-checks only `if wasSpinning`). The poller adds a
// readier that is itself a parked worker: a worker sleeping in the poller
// stays on the idle list while it waits, takes itself off the list before
// it queues the fibers the poller readied, and then wakes another worker
// as any readier does (Worker::queue_polled), so it is never handed its
// own work.
//
// Rejected
//  * One global run queue under a lock (Go before 1.1): contention on every
//    switch.
//  * Waking a worker for every ready fiber: futex storms; spinning workers
//    absorb bursts instead.
//  * Pinning workers to CPUs: the machine is shared; the kernel balances.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "fiber.h"
#include "injector.h"
#include "run_queue.h"
#include "stack.h"
#include "timer_heap.h"

namespace gort::detail {

struct Scheduler;
class NetPoll;      // netpoll.h
struct ReadyBatch;  // netpoll.h
class Monitor;      // monitor.h

// Where a worker queues the fibers a poll readied.
enum class PolledWhere : uint8_t {
  kLocal,           // its own queue: it runs one next, others may steal the rest
  kBehindInjector,  // behind everything already waiting in the injector (fairness turns, preemption)
};
// Whether a non-blocking poll is worth making.
enum class PollWhen : uint8_t {
  kAlways,
  kUnlessSomeoneBlocked,  // a worker blocked in the poller will get the events anyway
};

// What a fiber asks of the scheduler when it switches out.
// kParkReleasing is kPark whose unlock step releases the Spinlock `arg`:
// what every wait queue's block() asks for, carried out without an indirect
// call (it cannot cancel the park).
// kPreempt is a yield the monitor asked for (a time slice ran out): the
// fiber goes behind the injector, not onto the local queue, and never
// switches directly to a local fiber (Go's gopreempt_m).
// Whether a readied fiber goes to the ready-er's next slot (it runs as soon
// as the ready-er switches out) or behind the others.
enum class RunNext : uint8_t { kNo, kYes };

// Only the fields the kind uses are written (this is built on every switch):
// unlock and arg are read for kPark and kParkReleasing alone; from and
// worker are always set by switch_out.
struct SwitchRequest {
  enum Kind { kYield, kPark, kParkReleasing, kExit, kPreempt } kind;
  bool (*unlock)(void* arg);  // kPark: runs after the switch; false = stay runnable
  void* arg;                  // kPark: unlock's argument; kParkReleasing: the Spinlock
  Fiber* from;                // the fiber switching out (set by switch_out)
  Worker* worker;             // the worker it switches out on (set by switch_out)

  explicit SwitchRequest(Kind k) : kind(k) {}
  SwitchRequest(Kind k, bool (*u)(void*), void* a) : kind(k), unlock(u), arg(a) {}
};

struct alignas(64) Worker {
  enum class Kind : uint8_t { kWorker, kSpare };
  Worker(Scheduler* s, int index, Kind kind, std::size_t default_stack);

  // ---- fixed at construction ----
  Scheduler* const sched;  // owner
  const int index;         // slot in sched->slots: shown in messages
  const Kind kind;         // kSpare: started by the monitor while a worker is stuck

  // ---- shared: thieves, wakers and the monitor touch these (atomics or locked) ----
  // The run queue is reached through its two handles (run_queue.h): the
  // owner's side by this worker's own thread, the thieves' side by anyone.
  RunQueue::Owner local_queue() { return runq_.owner(); }
  RunQueue::Thief queue_for_others() { return runq_.thief(); }
  TimerHeap timers;                       // timers added by fibers running here; anyone may run due ones
  std::atomic<uint32_t> wake_word{0};     // futex: 1 = woken
  std::atomic<int64_t> parked_until{-1};  // deadline while parked, -1 when running
  std::atomic<bool> in_netpoll{false};    // parked in the poller, not on wake_word's futex
  bool spinning = false;                  // counted in sched->nspinning (handed over under idle_mu)
  bool on_idle_list = false;              // guarded by sched->idle_mu
  // The running fiber, or null. Written by the owner on every switch
  // (release: the monitor that loads it with acquire may read the fiber's
  // id and name, written before the fiber was first queued); read relaxed
  // by the owner.
  std::atomic<Fiber*> current{nullptr};
  // Progress mark (Go's schedtick), for the monitor (monitor.h): odd while a
  // fiber runs here, even while the worker is in its schedule loop; +1 when
  // the loop switches into a fiber and when control comes back to the loop,
  // +2 on a direct switch from fiber to fiber. Only the owner writes it, with
  // a relaxed load and store: no locked instruction on the switch path. The
  // monitor only compares samples of it, so relaxed is enough.
  std::atomic<uint64_t> switches{0};
  // Set by the monitor when the fiber running here has held the worker for a
  // time slice; the fiber that reads it at a runtime call clears it and
  // yields (preemption_point). Not cleared on a switch, which would cost
  // the switch path a store: if the fiber switched before it looked, the
  // next fiber yields once early, which is harmless and rare. Relaxed: a
  // stale read delays the yield by one runtime call.
  std::atomic<bool> preempt_flag{false};
  std::atomic<uint64_t> preemptions{0};  // yields the mark caused; owner writes, stats() sums
  // Fibers spawned by fibers running here, and fibers that exited here
  // (Scheduler::live_fibers sums them). Only the owner writes them, with a
  // load and a store: a fan-out spawns on one worker while another runs its
  // fibers, and one shared count moved a cache line between the two cores
  // on every fiber. release: a reader that acquires a count sees what the
  // owner did before it (an exit's stack put back, for the leak checks).
  std::atomic<int64_t> spawned{0};
  std::atomic<int64_t> exited{0};
  void bump(std::atomic<int64_t>& c) { c.store(c.load(std::memory_order_relaxed) + 1, std::memory_order_release); }
  // Sleeps of park_worker whose deadline had passed when computed: each is
  // a pass of the idle loop that slept not at all. A timer that came due
  // just then makes one; many would be the idle loop spinning. Owner
  // writes, relaxed (a count); summed at teardown (TeardownCounts), for tests.
  std::atomic<int64_t> sleeps_already_due{0};
  // Time in the schedule loop outside park_worker's sleep (running fibers
  // or looking for them), for metrics: busy_ns is the total up to
  // busy_since, the start of the current busy stretch (0 while asleep or
  // out of the loop). The owner reads the clock where it sleeps anyway
  // (two reads per sleep, none per switch) and stores busy_since before
  // busy_ns (release); a reader loads busy_ns first (acquire), so a torn
  // read can only miss the stretch that just ended: the sum never goes
  // back (Worker::busy_ns_now).
  std::atomic<int64_t> busy_ns{0};
  std::atomic<int64_t> busy_since{0};
  void busy_begin();
  void busy_end();
  int64_t busy_ns_now() const;  // any thread
  // True while the monitor counts the fiber running here as stuck (it held
  // the worker past a time slice and kStuckAfter without a runtime call,
  // monitor.h); cleared when the monitor next sees the mark move. Only the
  // monitor writes it, the fiber dump reads it. Relaxed: it orders
  // nothing, and it may be one monitor round stale.
  std::atomic<bool> stuck{false};
  std::atomic<bool> spare_exited{false};  // kSpare: its thread returned and may be joined
  // A copy of sched->stopping for the direct switch path (one load there
  // instead of two). Set by Scheduler::stop for every slot, and by the
  // monitor for spares started meanwhile; the loop reads sched->stopping.
  std::atomic<bool> stopping{false};

  // Every kInjectorCheckInterval-th schedule the loop looks at the injector
  // (and the network) before the local queue. Go's: prime, so it does not
  // beat with other periods.
  static constexpr uint32_t kInjectorCheckInterval = 61;

  // ---- owner only: the worker's own thread (Tokio's Core) ----
  // Every access is written `own.x` (or `w->own.x` by code running on w's
  // thread), so a reach into another worker's Own stands out.
  struct Own {
    Own(StackPool* pool, FiberPool* records, std::size_t default_stack, uint64_t seed)
        : stacks(pool, default_stack), fibers(records), rng(seed) {}
    StackCache stacks;            // this worker's free stacks
    FiberCache fibers;            // this worker's free fiber records
    Context sched_ctx = nullptr;  // schedule loop's context while a fiber runs
    SanitizerContext sched_san;   // sanitizer view of the schedule loop's stack
    // Schedules left before the injector's fairness turn. A countdown rather
    // than a counter taken modulo the interval: the direct switch path tests
    // it for zero on every switch. find_runnable resets it when it takes the
    // turn, so it is >= 1 whenever a fiber is scheduled.
    uint32_t until_fairness_turn = kInjectorCheckInterval - 1;
    uint64_t rng;                  // victim selection (xorshift)
    bool in_worker_stack = false;  // the running fiber is inside on_worker_stack: parking is fatal
  } own;
  std::thread thread;  // empty for worker 0 (the caller of run); joined by run_main or the monitor

  void loop();             // the schedule loop; returns when the runtime stops (or a spare retires)
  void spare_main();       // a spare's thread: loop, wait in the pool, loop again or exit
  Fiber* find_runnable();  // blocks (parks the worker) until work or stop
  void execute(Fiber* f);  // switch into f, then handle the request of whoever returns
  // The switch path (inline below: it runs on every yield and park).
  void finish_switch(Fiber* from, SwitchRequest* req);
  template <SwitchRequest::Kind K>
  void finish_switch_as(Fiber* from, SwitchRequest* req);  // the same, for a kind known at compile time
  void finish_exit(Fiber* from);                           // finish_switch's kExit case, out of line
  void finish_preempt(Fiber* from);                        // finish_switch's kPreempt case, out of line
  void note_switch(uint64_t step) {
    switches.store(switches.load(std::memory_order_relaxed) + step, std::memory_order_relaxed);
  }
  Fiber* next_for_direct_switch();
  bool push_local(Fiber* f, RunNext where);  // true: something went to the ring (stealable)
  Fiber* take_from_injector();
  Fiber* steal();
  bool run_timers(int64_t now);
  bool run_timers_of(Worker* other);  // other's due timers, into our ring: true if any fired
  bool run_others_due_timers();       // the same over every other worker
  int local_room();                   // free slots in the local ring (one fewer while the next slot is full)
  int timer_budget();                 // how many due timers run_timers may fire now (worker.cpp)
  bool retire_if_unneeded();          // kSpare: hand the queue back and leave the loop
  // The idle path of find_runnable, in the order argued in this file's
  // header: go_idle (1)(2), recheck_queues (3), sleep, come back.
  void park_worker();
  bool go_idle(bool* was_spinning);
  bool recheck_queues_after_idle(bool was_spinning);
  int64_t sleep_deadline(bool* deadlock_suspect, uint64_t* epoch);
  void sleep_until_woken(int64_t deadline, ReadyBatch& io);
  void leave_idle_list(bool deadlock_suspect, uint64_t epoch);
  void stop_spinning();
  uint64_t next_random();
  void wake();  // after wake_word = 1: futex wake, and interrupt the poller if in it

  // The worker's side of the network poller, defined in netpoll.cpp.
  bool sleep_in_netpoll(int64_t deadline, ReadyBatch& io);  // false: sleep on the futex instead
  // Pushes what a poll readied (call when off the idle list): on the local
  // queue, or behind everything already waiting in the injector.
  int queue_polled(ReadyBatch& io, PolledWhere where = PolledWhere::kLocal);
  // Nonblocking poll; true if fibers were queued.
  bool poll_network(PollWhen when, PolledWhere where = PolledWhere::kLocal);

 private:
  RunQueue runq_;  // see local_queue / queue_for_others
};

struct Scheduler {
  Scheduler(int workers, int max_threads, std::size_t default_stack, bool detect_deadlock);
  ~Scheduler();

  const int nworkers;         // GORT_PROCS: workers that run fibers when none is stuck
  const int max_threads;      // GORT_MAX_THREADS: workers + spares, at most
  std::size_t default_stack;  // usable bytes
  bool detect_deadlock;
  StackPool stack_pool;  // declared before the workers: their caches return to it
  FiberPool fiber_pool;  // likewise
  // Every worker ever started: slots [0, nworkers) are the workers, the
  // rest spares (monitor.h). A slot, once filled, keeps its Worker until
  // the runtime stops, so a pointer read from it stays valid; `nslots` is
  // published with release after the slot is written (worker_at's acquire).
  std::unique_ptr<std::unique_ptr<Worker>[]> slots;
  std::atomic<int> nslots{0};
  Injector injector;                     // work from outside the workers' own queues
  std::atomic<int> nspinning{0};         // workers looking for work
  std::atomic<int> nidle{0};             // workers on idle_list
  std::atomic<int> nspares_active{0};    // spares running the schedule loop (not in the pool)
  std::atomic<int> spares_to_retire{0};  // set by the monitor; a spare that takes one leaves its loop
  std::atomic<int> spare_threads{0};     // spare threads started and not yet joined
  std::mutex idle_mu;                    // guards idle_list, spare_pool, Worker::on_idle_list
  std::vector<Worker*> idle_list;
  std::vector<Worker*> spare_pool;          // retired spares waiting to be reused (their threads alive)
  std::atomic<uint64_t> wake_epoch{0};      // bumped on every worker wake (deadlock check)
  std::atomic<int64_t> external_wakers{0};  // things outside the workers that may ready a fiber
  std::atomic<int> helper_threads{0};       // threads the runtime owns besides workers (blocking pool)
  std::atomic<bool> stopping{false};
  std::atomic<NetPoll*> netpoll{nullptr};  // created by the first poll_open, freed with us
  // Written on every spawn: on a cache line apart from the fields above, so
  // that a fan-out moves no read-mostly field between the cores (stopping
  // is read on every spawn). It shares its line with the start-up constants
  // below, read only by the dump.
  alignas(64) std::atomic<uint64_t> next_fiber_id{1};
  // Spawns by threads that are not this runtime's workers (the main fiber's,
  // a plain thread's): rare, so one shared count. Workers count their own.
  std::atomic<int64_t> spawned_outside{0};
  // The cycle counter and the clock read together at start-up: the fiber
  // dump turns a wait's start (Fiber::wait_since, in cycles) into elapsed
  // time by the rate between this pair and a pair it reads itself.
  const uint64_t start_ticks = cpu_ticks();
  const int64_t start_ns = now_ns();
  std::unique_ptr<Monitor> monitor;  // started by run_main with the workers

  Worker* worker_at(int i) const { return slots[std::size_t(i)].get(); }
  // Fibers spawned and not yet dead, summed over the workers' counts. Exact
  // while no fiber spawns or exits (every worker idle, or stopped); during
  // a fan-out it may count a fiber that exits meanwhile, never less than 0.
  int64_t live_fibers() const;
  int slot_count() const { return nslots.load(std::memory_order_acquire); }
  // Workers that run the schedule loop now: the workers and the active spares.
  int active_workers() const { return nworkers + nspares_active.load(); }

  // Makes f runnable from any thread: on the calling worker's queue if it is
  // one of ours, else via the injector; then wakes a worker if the fiber (or
  // one it displaced from the next slot) is where another worker could take
  // it. A fiber that only lands in the next slot wakes nobody: it runs as
  // soon as its readier blocks or yields (Tokio's LIFO-slot rule). Waking a
  // worker for it would cost a futex call per spawn or hand-off and, in the
  // common case where the readier is about to block, buy nothing; if the
  // readier never blocks, the monitor notices (monitor.h).
  void ready(Fiber* f, RunNext where);
  void inject(Fiber* f);
  void wake_idle_worker();  // Go's wakep
  void wake_worker_for_timer(int64_t when);
  void stop();             // from the main fiber's end
  bool nothing_can_run();  // deadlock test; call with idle_mu held
  int64_t earliest_timer() const;
  // Spares (monitor.h): a new or pooled spare joins the schedule loop.
  void start_spare();
};

// The scheduler of the running runtime (null outside gort::run) and the
// worker the calling thread is. current_worker() is deliberately not inline:
// a fiber may resume on another thread, and an inlined thread_local address
// could be cached across the switch by the compiler.
Scheduler* current_scheduler();
Worker* current_worker();
Fiber* current_fiber();

// What was left when the last gort::run returned (after its workers
// stopped): fibers not yet dead and stacks not back in a cache. Tests check
// both are zero (export_test.h).
struct TeardownCounts {
  int64_t live_fibers;
  int64_t stacks_in_use;
  int64_t records_in_use;      // fiber records not back in the pool
  int64_t sleeps_already_due;  // summed over the workers (Worker::sleeps_already_due)
};
TeardownCounts last_teardown();

// The fiber dump of <gort/debug.h>, appended to `out`, listing at most
// max_fibers fibers and a count of the rest (debug.cpp). Any thread, while
// s runs; it allocates, so not from a signal handler.
void append_fiber_dump(Scheduler* s, std::string& out, std::size_t max_fibers);
// Parked fibers by wait reason, counted by the same walk of the fiber
// records as the dump (debug.cpp): counts[r] for each WaitReason r. Any
// thread, while s runs; it costs a read of every record carved.
struct FiberCensus {
  int64_t runnable = 0;
  int64_t running = 0;
  int64_t parked_by_reason[kWaitReasons] = {};
};
void count_fibers(Scheduler* s, FiberCensus* out);
// A running fiber's id and name for a reader on another thread that checks
// afterwards whether the fiber was still running (the worker's switch mark
// did not move), as the monitor's warning does: single loads that the
// sanitizers are told to leave alone, since the block may be re-made for a
// new fiber meanwhile and the value then discarded (debug.cpp).
uint64_t racy_id(const Fiber* f);
const char* racy_name(const Fiber* f);
// SIGQUIT prints the dump and exits 2 (debug.cpp): run_main installs the
// handler at start-up (unless the program has its own, or
// GORT_TRACEBACK=none) and removes it at the end; the monitor calls
// dump_if_quit_requested on every round, where the dump is made.
void install_quit_handler();
void remove_quit_handler();
void dump_if_quit_requested(Scheduler* s);
// An exception that escapes a fiber's function is fatal, reported with the
// fiber and the backtrace of the throw (debug.cpp): run_main installs the
// std::terminate handler that does it, unless the program has set its
// own, and puts the previous one back at the end.
void install_terminate_handler();
void remove_terminate_handler();

// ---- time slices (monitor.h) ----

// Yields the running fiber of w because its time slice ran out (out of
// line: it runs at most once per slice).
void preempt(Worker* w);

// Bind a stack to f, which has none yet, as w is about to run it for the
// first time: from w's cache, where a fiber that died on w gave it back,
// hot in w's caches (fiber_pool.h says why). bind_stack_on_first_run refills w's cache from the pool if need be
// (the pool's lock, maybe a new slab), so only the schedule loop, holding
// no lock, calls it; it is fatal if no stack can be had: the spawner, which
// could have caught an exception, has moved on. bind_stack_from_cache only
// pops w's cache (no lock, no system call) and says whether it could.
void bind_stack_on_first_run(Worker* w, Fiber* f);
bool bind_stack_from_cache(Worker* w, Fiber* f);

// The check a runtime call that did not block makes, for a caller that
// holds its worker (read since its last suspension).
__attribute__((always_inline)) inline void preemption_point_on(Worker* w) {
  if (__builtin_expect(w->preempt_flag.load(std::memory_order_relaxed), 0)) preempt(w);
}

// The calling thread's worker's preempt_flag; outside workers, a flag
// nobody sets (so the check needs no null test). Read directly only by
// preemption_point_inline.
extern constinit thread_local std::atomic<bool>* tls_preempt_flag;

// preemption_point() without the call, for a runtime call's fast path that
// has not suspended since the function was entered: the thread-local is
// then read on the thread the function started on, whatever the compiler
// does with its address ("Thread-locals" in docs/ARCHITECTURE.md).
void preempt_current();  // out of line: preempt(current_worker())
__attribute__((always_inline)) inline void preemption_point_inline() {
  if (__builtin_expect(tls_preempt_flag->load(std::memory_order_relaxed), 0)) preempt_current();
}

// ---- the switch path, inline: every yield and park runs these ----

// The fiber a switching-out fiber may hand its worker to directly, without
// a round trip through the schedule loop: the local queue's next fiber,
// unless the loop has something to do first (its injector fairness turn,
// due timers, stopping). The clock is read only when a timer is pending.
__attribute__((always_inline)) inline Fiber* Worker::next_for_direct_switch() {
  if (__builtin_expect(own.until_fairness_turn == 0, 0)) return nullptr;
  if (int64_t when = timers.next_when(); __builtin_expect(when != kNever, 0) && when <= now_ns()) return nullptr;
  if (__builtin_expect(stopping.load(std::memory_order_relaxed), 0)) return nullptr;
  Fiber* f = local_queue().pop();
  if (f != nullptr) --own.until_fairness_turn;  // >= 1 here: tested above
  return f;
}

__attribute__((always_inline)) inline bool Worker::push_local(Fiber* f, RunNext where) {
  if (where == RunNext::kYes) {
    f = local_queue().set_next(f);
    if (f == nullptr) return false;
  }
  local_queue().push(f, [this](Fiber** batch, uint32_t n) { sched->injector.push_batch(batch, n); });
  return true;
}

// Carries out what `from` asked for when it switched out (its request of
// kind K). Runs after its registers are saved: on the schedule loop's stack,
// or on the stack of the fiber switched to directly.
template <SwitchRequest::Kind K>
__attribute__((always_inline)) inline void Worker::finish_switch_as(Fiber* from, SwitchRequest* req)
    GORT_NO_THREAD_SAFETY_ANALYSIS {  // kParkReleasing releases a lock the parked fiber took
  if constexpr (K == SwitchRequest::kYield) {
    from->set_state(FiberState::kRunning, FiberState::kRunnable);
    push_local(from, RunNext::kNo);
  } else if constexpr (K == SwitchRequest::kPark) {
    // Read the request before unlock: once it returns true the fiber may be
    // running elsewhere and `req` (on its stack) may be gone.
    auto unlock = req->unlock;
    void* arg = req->arg;
    from->set_state(FiberState::kRunning, FiberState::kParked);
    if (unlock != nullptr && !unlock(arg)) {
      from->set_state(FiberState::kParked, FiberState::kRunnable);
      push_local(from, RunNext::kYes);
    }
  } else if constexpr (K == SwitchRequest::kParkReleasing) {
    from->set_state(FiberState::kRunning, FiberState::kParked);
    // The release is the last access to the lock (and to req): from here a
    // waker may take the fiber, run it elsewhere and free both.
    static_cast<Spinlock*>(req->arg)->unlock();
  } else if constexpr (K == SwitchRequest::kPreempt) {
    finish_preempt(from);
  } else {
    finish_exit(from);
  }
}

// The same when the kind is known only at run time: the schedule loop, and
// a fresh fiber's entry (entry_request).
__attribute__((always_inline)) inline void Worker::finish_switch(Fiber* from, SwitchRequest* req) {
  switch (req->kind) {
    case SwitchRequest::kYield: return finish_switch_as<SwitchRequest::kYield>(from, req);
    case SwitchRequest::kPark: return finish_switch_as<SwitchRequest::kPark>(from, req);
    case SwitchRequest::kParkReleasing: return finish_switch_as<SwitchRequest::kParkReleasing>(from, req);
    case SwitchRequest::kExit: return finish_switch_as<SwitchRequest::kExit>(from, req);
    case SwitchRequest::kPreempt: return finish_switch_as<SwitchRequest::kPreempt>(from, req);
  }
}

// Runs on the stack of the fiber switched to, before it resumes: saves the
// context of the fiber that switched out and carries out its request. The
// returned transfer is what the resumed fiber sees: the schedule loop's
// context (unchanged) and its worker. One instance per kind: switch_out
// knows the kind at compile time, so nothing dispatches on it here.
template <SwitchRequest::Kind K>
Transfer finish_on_next(Transfer t) {
  auto* req = static_cast<SwitchRequest*>(t.data);
  Worker* w = req->worker;  // same thread: the switch did not change workers
  Fiber* from = req->from;
  from->ctx = t.fctx;
  w->finish_switch_as<K>(from, req);
  return Transfer{w->own.sched_ctx, w};
}

// Switches the running fiber `self` out of worker w (the caller's current
// worker, whose `current` the caller has read) with `req` (of kind K);
// returns when it is resumed, with the worker that resumed it. If the worker's local queue has a fiber, control goes
// straight to it (one context switch; the request is carried out on top of it, boost's ontop_fcontext); otherwise to
// the schedule loop. Inline into its callers: yield, park and a fiber's exit.
template <SwitchRequest::Kind K>
__attribute__((always_inline)) inline Worker* switch_out(Worker* w, Fiber* self, SwitchRequest* req) {
  req->from = self;
  req->worker = w;
  constexpr Suspended suspended = K == SwitchRequest::kExit ? Suspended::kDying : Suspended::kWillResume;
  Transfer t;
  Fiber* next = nullptr;
  if constexpr (K != SwitchRequest::kPreempt) next = w->next_for_direct_switch();
  if (next != nullptr && __builtin_expect(next->ctx == nullptr, 0) && !bind_stack_from_cache(w, next)) {
    // Its stack must come from the pool (its lock, maybe a new slab's
    // system calls): not here, where the fiber switching out may hold a
    // wait queue's spinlock until its request is carried out. Back to the
    // front of the queue; the schedule loop binds it, with no lock held.
    w->push_local(next, RunNext::kYes);
    next = nullptr;
  }
  if (next != nullptr) {
    next->set_state(FiberState::kRunnable, FiberState::kRunning);
    w->current.store(next, std::memory_order_release);  // see Worker::current
    w->note_switch(2);                                  // still odd: a fiber runs
    if (next->started) {
      annotate_switch_begin(&self->san, &next->san, suspended);
      t = jump_ontop(next->ctx, req, &finish_on_next<K>);
    } else {
      annotate_switch_begin(&self->san, &next->san, suspended);
      next->entry_request = req;
      t = jump(next->ctx, req);
    }
  } else {
    annotate_switch_begin(&self->san, &w->own.sched_san, suspended);
    t = jump(w->own.sched_ctx, req);
  }
  // Resumed, maybe by another worker: everything thread-specific is re-read.
  w = static_cast<Worker*>(t.data);
  w->own.sched_ctx = t.fctx;
  annotate_switch_end(&self->san, &w->own.sched_san);
  return w;
}

}  // namespace gort::detail
