// monitor.h: the runtime's monitor thread (Go's sysmon): time slices, stuck
// workers and their spares, the network when nobody polls it.
//
// Design
//  * One thread per runtime, started by run_main with the workers and
//    joined when they stop. It never runs fibers and takes no lock on any
//    switch path: it samples each worker's progress mark (Worker::switches:
//    odd while a fiber runs, bumped on every switch by the owner with a
//    plain store) and acts on what it sees.
//  * Time slice. A worker whose mark has not moved for kTimeSlice while odd
//    runs one fiber that long: the monitor stores the mark in
//    Worker::preempt_at. Every runtime call that did not block (a read with
//    data waiting, a send with room, a spawn, an uncontended lock) checks
//    the two for equality (preemption_point: one load of worker state) and
//    yields; the fiber goes behind the injector (SwitchRequest::kPreempt).
//    A fiber that switches for any reason moves the mark, so a request
//    aimed at one fiber never preempts the next.
//  * Stuck workers and spares. A worker whose mark has not moved for
//    kTimeSlice + kStuckAfter is stuck: its fiber makes no runtime call (a
//    blocking system call, a computation). The stuck fiber keeps its
//    worker. While some worker is stuck and work is waiting that no free
//    worker can take (nobody idle or spinning), the monitor activates a
//    spare: a Worker in a slot after the workers, with its own thread,
//    queue, timers and stack cache, that steals, runs timers and polls like
//    any other. At most one spare per stuck worker is active; when a stuck
//    fiber comes back to the scheduler, a spare retires at its next pass
//    through find_runnable (Scheduler::spares_to_retire): it hands its
//    queue to the injector and waits in the spare pool, and its thread
//    exits after kSpareIdleNs unused. A stuck worker's queue and next slot
//    are stolen from like any busy worker's; its due timers, and those of
//    retired spares, are run by the monitor itself (and by any idle worker
//    before it parks), so nothing a stuck thread holds waits for it. Workers plus spares are bounded by
//    GORT_MAX_THREADS (fatal error past it).
//  * Report. The first time in an episode that a fiber holds its worker
//    for GORT_STUCK_WARN_MS (default 100; 0: never), one line on stderr
//    names the fiber, the worker and the remedy.
//  * Network. When fibers wait on the poller, nobody is blocked in it and
//    no poll has happened for kNetpollStale, the monitor polls without
//    blocking and injects what it readied: busy workers poll only on their
//    fairness turn, which a few long-running fibers make rare.
//  * Scavenger. Every GORT_SCAVENGE_MS (default 1000; 0: never) the monitor
//    gives back to the kernel the free stacks that no spawn took during the
//    whole previous period (StackPool::scavenge, stack.h), in one batched
//    call: memory goes back after a peak without a system call on any
//    spawn or exit. The pages of poll descriptors that no connection used
//    for a whole period go back the same way (NetPoll::scavenge,
//    netpoll.h), and timer heaps left mostly empty shrink. When it gave
//    stacks or descriptors back, a peak has passed, and the C allocator's
//    free pages go back too (release_free_heap_memory, platform.h): what
//    the peak's fibers allocated outside their stacks.
//    It runs in the deep sleep too, whose wake-ups it shares.
//  * Sleep. The monitor sleeps 20 us after a round in which it acted, and
//    doubles the sleep after 50 quiet rounds, up to 10 ms (Go's sysmon
//    delays). When every active worker is idle nothing can hold a worker,
//    and it sleeps kDeepSleepNs at a time until one is busy: workers never
//    wake it, so going idle and busy costs them nothing.
//  * SIGQUIT. Every round, and every deep-sleep wake-up, looks at the flag
//    the SIGQUIT handler sets and, if set, prints the fiber dump and exits 2
//    (debug.cpp): the monitor is the thread that is sure to wake within
//    kDeepSleepNs whatever the fibers do, and it may allocate and use stdio.
//
// Why no work is lost or run twice: the monitor never takes a fiber from a
// worker. A stuck worker's run queue is taken only through the thieves'
// side (RunQueue::steal_half_into_me), whose CAS on head gives each fiber to
// one taker; the owner's side keeps its one owner, the stuck thread, which
// finds its queue shorter when it comes back. Timers are run under their
// heap's lock, whoever runs them; a fired timer is out of the heap before
// fire() runs. Preemption is a yield at a point the fiber chose (a runtime
// call), through the ordinary switch path.
//
// Rejected
//  * Asynchronous preemption by signal (Go >= 1.14): C++ code interrupted
//    at an arbitrary instruction may be inside malloc or hold a pthread
//    mutex; the next fiber run on that thread then deadlocks or corrupts
//    the heap. Go can do it because its compiler records safe points.
//  * Handing the stuck thread's whole worker (its queue's owner side, its
//    timers, its stack cache) to another thread, as Go hands off a P: the
//    stuck fiber comes back at any instant and would race the new owner on
//    the owner's side of the queue on every runtime call it makes.
//  * A clock read on every switch to time slices exactly: it costs more
//    than the switch it measures; sampling a counter is free for the
//    worker and exact enough for a 10 ms slice.
#pragma once

#include <atomic>
#include <cstdint>
#include <thread>
#include <vector>

namespace gort::detail {

struct Scheduler;
struct Worker;

struct MonitorConfig {
  int64_t stuck_warn_ns;       // GORT_STUCK_WARN_MS; 0: never warn
  int64_t scavenge_period_ns;  // GORT_SCAVENGE_MS; 0: never give free stacks back
};

class Monitor {
 public:
  static constexpr int64_t kTimeSlice = 10'000'000;     // Go's forcePreemptNS
  static constexpr int64_t kStuckAfter = 10'000'000;    // past the preemption request
  static constexpr int64_t kNetpollStale = 10'000'000;  // Go's sysmon: 10 ms without a poll
  static constexpr int64_t kSpareIdleNs = 5'000'000'000;
  static constexpr int64_t kDeepSleepNs = 20'000'000;  // while every worker is idle: 50 wake-ups a second

  Monitor(Scheduler* s, MonitorConfig config);
  ~Monitor();
  void start();
  // After Scheduler::stop and the workers' return: joins the monitor, then
  // every spare thread.
  void stop_and_join();

  // A retired spare waits here. True: it was reused (run the loop again);
  // false: the runtime stops or it was unused for kSpareIdleNs (exit).
  bool wait_in_spare_pool(Worker* w);
  // Activates a pooled spare or starts a new one (monitor thread only).
  void start_spare();

  uint64_t stuck_episodes() const { return episodes_.load(std::memory_order_relaxed); }

 private:
  struct Watch {            // the monitor's view of one slot (monitor thread only)
    uint64_t switches = 0;  // the progress mark last seen
    int64_t since = 0;      // when it was first seen
    bool stuck = false;     // this episode was counted
    bool warned = false;    // this episode was reported
  };
  void run();
  bool round(int64_t now);  // true if it acted (preempted, started a spare, readied I/O)
  bool watch_worker(int slot, int64_t now, int* nstuck, bool* work_on_stuck);
  bool poll_network(int64_t now);
  void warn(Worker* w, uint64_t mark, int64_t held_ns);
  void join_exited_spares();
  void deep_sleep();
  void scavenge_if_due(int64_t now);
  void sleep_for_ns(int64_t ns);
  void wake();

  Scheduler* const sched_;
  const MonitorConfig config_;
  std::thread thread_;
  std::vector<Watch> watch_;            // by slot
  std::atomic<uint32_t> wake_word_{0};  // futex: 1 = woken (stop)
  std::atomic<uint64_t> episodes_{0};   // stuck episodes, for stats()
  int64_t next_scavenge_ = 0;           // when the next scavenge is due (0: not yet scheduled)
  uint64_t polls_seen_ = 0;             // the poller's poll count last seen
  int64_t polls_seen_at_ = 0;           // when it last changed
};

}  // namespace gort::detail
