// Cancellation with a Context: workers stop when their parent context is
// canceled or its deadline passes, whatever they are blocked in (a channel
// select, a sleep).
#include <gort/gort.h>

#include <atomic>
#include <cstdio>

#include "usage.h"

using namespace std::chrono_literals;

namespace {

// Works until ctx is done; returns how many jobs it finished.
int worker(const gort::Context& ctx, gort::Chan<int>& jobs) {
  int done = 0;
  for (;;) {
    int job = 0;
    int chosen = gort::select(gort::on_recv(ctx.done()),
                              gort::on_recv(jobs, [&](std::optional<int> j) { job = j.value_or(0); }));
    if (chosen == 0) return done;
    if (gort::sleep_for(ctx, std::chrono::milliseconds(job)) != gort::ContextError::kNone) return done;
    ++done;
  }
}

}  // namespace

constexpr const char* kAbout = "Workers stopped by their context: by cancel(), and by a deadline.";

int main(int argc, char** argv) {
  if (int rc = example_usage(argc, argv, "", kAbout); rc >= 0) return rc;
  return gort::run([] {
    // 1. Cancel by hand: four workers, one cancel.
    // The workers share ctx and jobs by reference: main outlives them.
    auto [workers_ctx, cancel] = gort::with_cancel(gort::background());
    const gort::Context& ctx = workers_ctx;
    gort::Chan<int> jobs;
    gort::WaitGroup wg;
    std::atomic<int> finished{0};
    for (int i = 0; i < 4; ++i) {
      wg.add(1);
      go_spawn([&] {
        finished += worker(ctx, jobs);
        wg.done();
      });
    }
    for (int i = 0; i < 8; ++i) jobs.send(1);
    cancel();
    wg.wait();
    std::printf("cancel: 4 workers stopped after %d jobs: %s\n", finished.load(), gort::to_string(ctx.err()));

    // 2. A deadline: a child of a 50 ms context stops at the parent's deadline.
    auto [parent, cancel_parent] = gort::with_timeout(gort::background(), 50ms);
    auto [child, cancel_child] = gort::with_cancel(parent);
    gort::ContextError why = gort::sleep_for(child, 1h);
    std::printf("cancel: an hour's sleep ended early: %s\n", gort::to_string(why));
    cancel_child();
    cancel_parent();
    return finished.load() <= 8 && why == gort::ContextError::kDeadlineExceeded ? 0 : 1;
  });
}
