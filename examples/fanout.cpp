// Fan-out and fan-in over 100 000 fibers: each computes one value and sends
// it on a shared channel; main sums them. A fiber costs a small stack, not
// a thread.
#include <gort/gort.h>

#include <cstdint>
#include <cstdio>

int main() {
  constexpr int kFibers = 100'000;
  return gort::run([] {
    auto results = gort::make_chan<int64_t>(1024);
    for (int i = 1; i <= kFibers; ++i) go_spawn([results, i] { results->send(int64_t(i) * 2); });
    int64_t sum = 0;
    for (int i = 0; i < kFibers; ++i) sum += *results->recv();
    int64_t want = int64_t(kFibers) * (kFibers + 1);
    std::printf("fanout: %d fibers, sum=%lld (%s)\n", kFibers, static_cast<long long>(sum),
                sum == want ? "ok" : "WRONG");
    return sum == want ? 0 : 1;
  });
}
