// metrics.h: what a running gort runtime is doing, as numbers (Go's
// runtime/metrics), and the same in Prometheus's text format.
//
//   gort::Metrics m = gort::metrics();          // any thread, while gort::run runs
//   std::string page = gort::debug::prometheus_text();
//
// Reading costs nothing on the runtime's fast paths: every figure is state
// the runtime keeps anyway (counters each worker writes alone, queue sizes,
// the poller's and the stack pool's counts), summed when read; the parked
// fibers by wait reason are counted by reading every fiber record, as the
// fiber dump does (<gort/debug.h>), and the stacks' committed bytes are
// asked of the kernel (mincore over the stack slabs), so reading takes
// longer the more fibers there are. A snapshot is not atomic across fields: each is read on its
// own, relaxed, while the runtime runs on. Outside gort::run every field is
// zero.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace gort {

struct WorkerMetrics {
  int index = 0;  // slot: [0, workers) are workers, the rest spares
  bool spare = false;
  bool idle = false;            // parked, waiting for work
  uint64_t switches = 0;        // fibers switched into here
  uint64_t preemptions = 0;     // yields forced here because a time slice ran out
  uint32_t run_queue = 0;       // fibers waiting in its local queue
  uint64_t timers_pending = 0;  // timers in its heap
  double busy_seconds = 0;      // in its schedule loop and not asleep: running fibers or looking for them
};

struct Metrics {
  int64_t fibers = 0;           // live: spawned and not yet returned
  // Live fibers by state, from the same walk of the fiber records as
  // parked_by_reason (so they may not add up to `fibers` exactly while
  // fibers come and go).
  int64_t fibers_runnable = 0;  // in a run queue
  int64_t fibers_running = 0;   // on a worker now
  int64_t fibers_parked = 0;    // waiting (parked_by_reason says for what)
  uint64_t fibers_spawned = 0;  // since gort::run began
  uint64_t switches = 0;        // context switches into fibers, all workers
  uint64_t preemptions = 0;
  uint64_t stuck_episodes = 0;  // a fiber held its worker without a runtime call (monitor)
  int workers = 0;              // GORT_PROCS
  int workers_idle = 0;
  int workers_spinning = 0;     // looking for work
  int spare_workers = 0;        // running fibers now, standing in for stuck workers
  int spare_threads = 0;        // alive (running or pooled)
  uint64_t injector = 0;        // fibers waiting in the global queue
  uint64_t timers_pending = 0;  // all workers' heaps
  int64_t netpoll_waiting = 0;  // fibers parked on a descriptor
  uint64_t netpoll_polls = 0;   // polls of the network, blocking or not
  uint64_t netpoll_wakeups = 0;  // fibers a poll made runnable (their descriptor became ready)
  int64_t stacks_in_use = 0;
  int64_t stacks_cached = 0;            // carved, not in use: in the workers' caches or the pool
  uint64_t stack_committed_bytes = 0;   // stack memory the kernel holds now (a mincore over the slabs)
  uint64_t stack_slabs = 0;             // slabs mapped
  int blocking_threads = 0;             // the blocking pool's helper threads
  int blocking_calls_running = 0;       // gort::blocking calls a helper runs now
  int blocking_calls_queued = 0;        // waiting for a helper
  // Parked fibers by why they wait, as the fiber dump names the reasons
  // ("chan receive", "I/O read", ...: <gort/debug.h>); reasons no fiber
  // waits for are left out. Counting reads every fiber record (the dump's
  // walk): the one figure whose cost grows with the fibers
  // (docs/BENCHMARKS.md has what it takes).
  struct Waiting {
    std::string reason;
    int64_t fibers = 0;
  };
  std::vector<Waiting> parked_by_reason;
  std::vector<WorkerMetrics> per_worker;
};

Metrics metrics();

namespace debug {
// metrics() in the Prometheus text exposition format (version 0.0.4): every
// series with HELP and TYPE, units in the names, counters ending in _total.
std::string prometheus_text();
}  // namespace debug

}  // namespace gort
