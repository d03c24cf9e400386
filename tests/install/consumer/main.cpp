// The README's example, built against the installed package.
#include <gort/gort.h>

#include <atomic>
#include <cstdio>

using namespace std::chrono_literals;

int main() {
  return gort::run([] {
    gort::WaitGroup wg;
    std::atomic<int> sum{0};
    wg.add(2);
    go_spawn([&] { gort::sleep_for(10ms); sum += 1; wg.done(); });
    go_spawn([&](int x) { sum += x; wg.done(); }, 42);
    wg.wait();
    std::printf("consumer: sum=%d\n", sum.load());
    return sum == 43 ? 0 : 1;
  });
}
