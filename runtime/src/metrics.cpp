// metrics.cpp: gort::metrics() and its Prometheus rendering (metrics.h).
// Everything is read from state the runtime keeps for its own use; nothing
// here adds a write to a fast path.

#include <gort/metrics.h>

#include <algorithm>
#include <cinttypes>
#include <cstdio>

#include <gort/detail/preempt.h>

#include "monitor.h"
#include "netpoll.h"
#include "platform.h"
#include "scheduler.h"
#include "services.h"

namespace gort {

Metrics metrics() {
  detail::Scheduler* s = detail::current_scheduler();
  Metrics m;
  if (s == nullptr) return m;
  m.fibers = s->live_fibers();
  m.fibers_spawned = s->next_fiber_id.load(std::memory_order_relaxed) - 1;
  m.workers = s->nworkers;
  m.workers_idle = s->nidle.load(std::memory_order_relaxed);
  m.workers_spinning = s->nspinning.load(std::memory_order_relaxed);
  m.spare_workers = s->nspares_active.load(std::memory_order_relaxed);
  m.spare_threads = s->spare_threads.load(std::memory_order_relaxed);
  m.stuck_episodes = s->monitor ? s->monitor->stuck_episodes() : 0;
  m.injector = s->injector.size_approx();
  if (detail::NetPoll* np = s->netpoll.load(std::memory_order_acquire)) {
    m.netpoll_waiting = np->waiting();
    m.netpoll_polls = np->poll_count();
    m.netpoll_wakeups = np->wakeup_count();
  }
  m.stacks_in_use = s->stack_pool.in_use();
  // Read one after the other while fibers come and go: clamped at zero.
  m.stacks_cached = std::max<int64_t>(0, int64_t(s->stack_pool.carved()) - m.stacks_in_use);
  m.stack_committed_bytes = s->stack_pool.committed_bytes();
  // The walks of the stacks above take their time with many fibers: a
  // fiber reading metrics in a loop yields its time slice here like any
  // other runtime call (a no-op on other threads).
  detail::preemption_point();
  m.stack_slabs = s->stack_pool.slab_count();
  detail::BlockingPoolLoad blocking = detail::blocking_pool_load();
  m.blocking_threads = blocking.threads;
  m.blocking_calls_running = blocking.running;
  m.blocking_calls_queued = blocking.queued;
  detail::FiberCensus census;
  detail::count_fibers(s, &census);
  m.fibers_runnable = census.runnable;
  m.fibers_running = census.running;
  for (std::size_t r = 0; r < detail::kWaitReasons; ++r) {
    int64_t n = census.parked_by_reason[r];
    m.fibers_parked += n;
    if (n > 0) m.parked_by_reason.push_back({detail::wait_reason_name(detail::WaitReason(r)), n});
  }
  for (int i = 0, n = s->slot_count(); i < n; ++i) {
    detail::Worker* w = s->worker_at(i);
    WorkerMetrics wm;
    wm.index = i;
    wm.spare = i >= s->nworkers;
    wm.idle = w->parked_until.load(std::memory_order_relaxed) != -1;
    // The progress mark moves by 2 per switch into a fiber (in and out, or
    // one direct switch): see Worker::switches.
    wm.switches = w->switches.load(std::memory_order_relaxed) / 2;
    wm.preemptions = w->preemptions.load(std::memory_order_relaxed);
    wm.run_queue = w->queue_for_others().size();
    wm.timers_pending = w->timers.pending();
    wm.busy_seconds = double(w->busy_ns_now()) / 1e9;
    m.switches += wm.switches;
    m.preemptions += wm.preemptions;
    m.timers_pending += wm.timers_pending;
    m.per_worker.push_back(wm);
  }
  return m;
}

namespace debug {

namespace {

class Page {
 public:
  void metric(const char* name, const char* type, const char* help) {
    append("# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
  }
  void value(const char* name, double v) { append("%s %.17g\n", name, v); }
  void value(const char* name, const char* labels, double v) { append("%s{%s} %.17g\n", name, labels, v); }
  void one(const char* name, const char* type, const char* help, double v) {
    metric(name, type, help);
    value(name, v);
  }
  std::string text;

 private:
  template <class... A>
  void append(const char* fmt, A... a) {
    char buf[512];
    int n = std::snprintf(buf, sizeof buf, fmt, a...);
    text.append(buf, std::size_t(n) < sizeof buf ? std::size_t(n) : sizeof buf - 1);
  }
};

}  // namespace

std::string prometheus_text() {
  Metrics m = metrics();
  Page p;
  // The page's own time: a reader computing rates from two scrapes divides
  // by this, not by its own clock (which a headless browser may fake).
  p.one("gort_clock_seconds", "gauge", "The runtime's monotonic clock when this page was made.",
        double(detail::now_ns()) / 1e9);
  p.one("gort_fibers", "gauge", "Fibers spawned and not yet returned.", double(m.fibers));
  p.one("gort_fibers_spawned_total", "counter", "Fibers spawned since the runtime started.", double(m.fibers_spawned));
  p.one("gort_context_switches_total", "counter", "Switches into fibers, all workers.", double(m.switches));
  p.one("gort_preemptions_total", "counter", "Yields forced at a runtime call because a time slice ran out.",
        double(m.preemptions));
  p.one("gort_stuck_episodes_total", "counter", "Times a fiber held its worker without a runtime call.",
        double(m.stuck_episodes));
  p.one("gort_workers", "gauge", "Worker threads that run fibers (GORT_PROCS).", m.workers);
  p.one("gort_workers_idle", "gauge", "Workers parked, waiting for work.", m.workers_idle);
  p.one("gort_workers_spinning", "gauge", "Workers looking for work.", m.workers_spinning);
  p.one("gort_spare_workers", "gauge", "Spare workers running fibers for stuck workers.", m.spare_workers);
  p.one("gort_spare_threads", "gauge", "Spare worker threads alive, running or pooled.", m.spare_threads);
  p.one("gort_injector_fibers", "gauge", "Runnable fibers in the global queue.", double(m.injector));
  p.one("gort_timers_pending", "gauge", "Timers waiting in the workers' heaps.", double(m.timers_pending));
  p.one("gort_netpoll_waiting_fibers", "gauge", "Fibers parked on a network descriptor.", double(m.netpoll_waiting));
  p.one("gort_netpoll_polls_total", "counter", "Polls of the network, blocking or not.", double(m.netpoll_polls));
  p.one("gort_netpoll_wakeups_total", "counter", "Fibers made runnable because their descriptor became ready.",
        double(m.netpoll_wakeups));
  p.one("gort_stacks_in_use", "gauge", "Fiber stacks held by live fibers.", double(m.stacks_in_use));
  p.one("gort_stacks_cached", "gauge", "Fiber stacks carved and free, in the workers' caches or the pool.",
        double(m.stacks_cached));
  p.one("gort_stack_committed_bytes", "gauge", "Stack memory the kernel holds in RAM, all stacks.",
        double(m.stack_committed_bytes));
  p.one("gort_stack_slabs", "gauge", "Stack slabs mapped.", double(m.stack_slabs));
  p.one("gort_blocking_threads", "gauge", "Helper threads of the blocking-call pool.", m.blocking_threads);
  p.one("gort_blocking_calls_running", "gauge", "Blocking calls a helper thread runs now.", m.blocking_calls_running);
  p.one("gort_blocking_calls_queued", "gauge", "Blocking calls waiting for a helper thread.", m.blocking_calls_queued);
  p.metric("gort_fibers_by_state", "gauge", "Live fibers by state.");
  p.value("gort_fibers_by_state", "state=\"runnable\"", double(m.fibers_runnable));
  p.value("gort_fibers_by_state", "state=\"running\"", double(m.fibers_running));
  p.value("gort_fibers_by_state", "state=\"parked\"", double(m.fibers_parked));
  p.metric("gort_fibers_parked", "gauge", "Parked fibers by what they wait for (the fiber dump's reasons).");
  for (const Metrics::Waiting& w : m.parked_by_reason) {
    char labels[64];
    std::snprintf(labels, sizeof labels, "reason=\"%s\"", w.reason.c_str());
    p.value("gort_fibers_parked", labels, double(w.fibers));
  }
  struct PerWorker {
    const char* name;
    const char* type;
    const char* help;
    double (*get)(const WorkerMetrics&);
  };
  const PerWorker series[] = {
      {"gort_worker_context_switches_total", "counter", "Switches into fibers on this worker.",
       [](const WorkerMetrics& w) { return double(w.switches); }},
      {"gort_worker_preemptions_total", "counter", "Forced yields on this worker.",
       [](const WorkerMetrics& w) { return double(w.preemptions); }},
      {"gort_worker_run_queue_fibers", "gauge", "Runnable fibers in this worker's local queue.",
       [](const WorkerMetrics& w) { return double(w.run_queue); }},
      {"gort_worker_timers_pending", "gauge", "Timers in this worker's heap.",
       [](const WorkerMetrics& w) { return double(w.timers_pending); }},
      {"gort_worker_idle", "gauge", "1 while this worker is parked waiting for work.",
       [](const WorkerMetrics& w) { return w.idle ? 1.0 : 0.0; }},
      {"gort_worker_busy_seconds_total", "counter",
       "Time this worker spent running fibers or looking for them, not asleep.",
       [](const WorkerMetrics& w) { return w.busy_seconds; }},
  };
  for (const PerWorker& s : series) {
    p.metric(s.name, s.type, s.help);
    for (const WorkerMetrics& w : m.per_worker) {
      char labels[64];
      std::snprintf(labels, sizeof labels, "worker=\"%d\",kind=\"%s\"", w.index, w.spare ? "spare" : "worker");
      p.value(s.name, labels, s.get(w));
    }
  }
  return std::move(p.text);
}

}  // namespace debug
}  // namespace gort
