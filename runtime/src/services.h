// services.h: runtime services that outlive a single fiber and must be
// wound down when gort::run returns. run_main calls stop_runtime_services()
// after the workers have joined and before the scheduler (and with it every
// fiber stack and timer heap) is destroyed.
#pragma once

namespace gort::detail {

// Joins the blocking-call helper threads (blocking.cpp). Calls in flight
// are waited for; calls still queued belong to abandoned fibers and are
// dropped without running.
void stop_blocking_pool();
// The blocking-call pool now, for gort::metrics() (blocking.cpp): its
// threads, calls a helper is running, and calls waiting for one, read
// together under the pool's lock (so running <= threads).
struct BlockingPoolLoad {
  int threads = 0;  // helper threads started
  int running = 0;
  int queued = 0;
};
BlockingPoolLoad blocking_pool_load();
// Frees runtime-owned timers (gort::after, Timer, Ticker, after_func,
// Context deadlines) still waiting to fire (timer.cpp).
void drop_pending_timers();

inline void stop_runtime_services() {
  stop_blocking_pool();
  drop_pending_timers();
}

}  // namespace gort::detail
