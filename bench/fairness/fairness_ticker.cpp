// fairness_ticker: does a 10 ms ticker keep ticking while every worker's
// fiber blocks in a system call or computes without a runtime call?
// bench/fairness/run.py runs it beside its Go twin (bench/peers/go-fairness)
// with the same arguments and compares the tick counts.
//
//   gort_fairness_ticker --offender syscall|busy [--workers P] [--hold-ms 1000] [--window-ms 1200]
//
// The ticker (a sleep_for(10 ms) loop) starts first; then P offender fibers
// each block in usleep (syscall) or spin on the clock (busy) for hold-ms.
// Prints one JSON line: the ticks counted during window-ms from the
// offenders' start. With no monitor, the count would stop for the hold.
#include <gort/gort.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>

namespace {

using Clock = std::chrono::steady_clock;

[[noreturn]] void usage(const char* argv0, int code) {
  std::fprintf(code == 0 ? stdout : stderr,
               "usage: %s --offender syscall|busy [--workers P] [--hold-ms 1000] [--window-ms 1200]\n"
               "Counts the ticks of a 10 ms ticker while P fibers (P = workers) block in usleep or\n"
               "spin for hold-ms; prints {\"ticks\":N,...} as one JSON line.\n",
               argv0);
  std::exit(code);
}

long parse_positive(const char* flag, const char* v) {
  char* end = nullptr;
  long n = std::strtol(v, &end, 10);
  if (end == v || *end != '\0' || n <= 0) {
    std::fprintf(stderr, "fairness_ticker: %s wants a positive integer, got '%s'\n", flag, v);
    std::exit(2);
  }
  return n;
}

}  // namespace

int main(int argc, char** argv) {
  std::string offender;
  int workers = 1;
  long hold_ms = 1000, window_ms = 1200;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if (a == "--help" || a == "-h") usage(argv[0], 0);
    if (i + 1 >= argc) usage(argv[0], 2);
    const char* v = argv[++i];
    if (a == "--offender")
      offender = v;
    else if (a == "--workers")
      workers = int(parse_positive("--workers", v));
    else if (a == "--hold-ms")
      hold_ms = parse_positive("--hold-ms", v);
    else if (a == "--window-ms")
      window_ms = parse_positive("--window-ms", v);
    else
      usage(argv[0], 2);
  }
  if (offender != "syscall" && offender != "busy") usage(argv[0], 2);

  int ticks = 0;
  int rc = gort::run(gort::Config{.workers = workers}, [&] {
    std::atomic<int> count{0};
    std::atomic<bool> stop{false};
    gort::WaitGroup ticker_done, offenders;
    ticker_done.add(1);
    go_spawn([&] {
      while (!stop.load(std::memory_order_relaxed)) {
        gort::sleep_for(std::chrono::milliseconds(10));
        count.fetch_add(1, std::memory_order_relaxed);
      }
      ticker_done.done();
    });
    gort::sleep_for(std::chrono::milliseconds(50));  // the ticker is running
    auto start = Clock::now();
    int before = count.load();
    offenders.add(workers);
    for (int i = 0; i < workers; ++i)
      go_spawn([&] {
        if (offender == "syscall") {
          usleep(useconds_t(hold_ms * 1000));
        } else {
          auto end = start + std::chrono::milliseconds(hold_ms);
          while (Clock::now() < end) {
          }
        }
        offenders.done();
      });
    gort::sleep_until(start + std::chrono::milliseconds(window_ms));
    ticks = count.load() - before;
    offenders.wait();
    stop = true;
    ticker_done.wait();
  });
  std::printf(
      "{\"runtime\":\"gort\",\"offender\":\"%s\",\"workers\":%d,\"hold_ms\":%ld,\"window_ms\":%ld,\"ticks\":%d}\n",
      offender.c_str(), workers, hold_ms, window_ms, ticks);
  return rc;
}
