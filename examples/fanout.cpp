// Fan-out and fan-in over 100 000 fibers: each computes one value and sends
// it on a shared channel; main sums them, then waits for every sender. A
// fiber costs a small stack, not a thread.
#include <gort/gort.h>

#include <cstdint>
#include <cstdio>

int main() {
  constexpr int kFibers = 100'000;
  return gort::run([] {
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
