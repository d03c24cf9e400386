// A blocking call done right: a call that blocks its thread (here: reading
// a file with stdio and a deliberately slow library call) runs through
// gort::blocking on a helper thread, so the worker keeps running fibers
// meanwhile. Calling it directly from a fiber would stall that worker.
#include <gort/gort.h>

#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <string>

#include "usage.h"

using namespace std::chrono_literals;

namespace {

std::string slow_read(const char* path) {
  ::usleep(100'000);  // stands in for a slow disk or a C library without a nonblocking API
  std::string text;
  if (FILE* f = std::fopen(path, "r")) {
    char buf[256];
    std::size_t n;
    while ((n = std::fread(buf, 1, sizeof buf, f)) > 0) text.append(buf, n);
    std::fclose(f);
  }
  return text;
}

}  // namespace

constexpr const char* kAbout =
    "A thread-blocking call run through gort::blocking while another fiber\n"
    "keeps ticking on the one worker.";

int main(int argc, char** argv) {
  if (int rc = example_usage(argc, argv, "", kAbout); rc >= 0) return rc;
  return gort::run(gort::Config{.workers = 1}, [&] {
    // One worker: if the read blocked it, the ticker fiber could not tick.
    std::atomic<int> ticks{0};
    std::atomic<bool> reading{true};
    gort::WaitGroup wg;
    wg.add(1);
    go_spawn([&] {
      {
        gort::Ticker tick(10ms);
        while (reading) {
          tick.chan()->recv();
          ++ticks;
        }
      }  // the ticker stops before the fiber reports done
      wg.done();
    });
    std::string text = gort::blocking([&] { return slow_read(argv[0]); });
    reading = false;
    wg.wait();
    std::printf("blocking: read %zu bytes while another fiber ticked %s\n", text.size(),
                ticks.load() >= 3 ? "on" : "NOT");
    return !text.empty() && ticks.load() >= 3 ? 0 : 1;
  });
}
