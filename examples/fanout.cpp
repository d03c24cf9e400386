// Fan-out and fan-in over 100 000 fibers (or the number given as the first
// argument): each computes one value and sends it on a shared channel; main
// sums them, then waits for every sender. A fiber costs a small stack, not
// a thread.
#include <gort/gort.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>

#include "usage.h"

constexpr const char* kUsage = "[FIBERS]";
constexpr const char* kAbout =
    "Fan-out and fan-in over FIBERS fibers (default 100000): each sends one\n"
    "value on a shared channel, and main sums them.";

int main(int argc, char** argv) {
  if (int rc = example_usage(argc, argv, kUsage, kAbout, 1); rc >= 0) return rc;
  char* end = nullptr;
  long fibers = argc > 1 ? std::strtol(argv[1], &end, 10) : 100'000;
  if ((argc > 1 && *end != '\0') || fibers <= 0 || fibers > 100'000'000) {
    std::fprintf(stderr, "%s: FIBERS must be a whole number from 1 to 100000000\n", argv[0]);
    return 2;
  }
  const int kFibers = int(fibers);
  return gort::run([kFibers] {
    gort::Chan<int64_t> results(1024);  // outlives every sender: they share it by reference
    gort::WaitGroup senders;
    senders.add(kFibers);
    for (int i = 1; i <= kFibers; ++i) {
      go_spawn([&results, &senders, i] {
        results.send(int64_t(i) * 2);
        senders.done();
      });
    }
    int64_t sum = 0;
    for (int i = 0; i < kFibers; ++i) sum += *results.recv();
    senders.wait();
    int64_t want = int64_t(kFibers) * (kFibers + 1);
    std::printf("fanout: %d fibers, sum=%lld (%s)\n", kFibers, static_cast<long long>(sum),
                sum == want ? "ok" : "WRONG");
    return sum == want ? 0 : 1;
  });
}
