// gdb_target: a gort program for test_gdb.py to look into -- named fibers
// parked in known functions, then "ready" on stdout, then it waits to be
// killed (a sleeping fiber keeps the deadlock detector quiet).
#include <chrono>
#include <cstdio>

#include <gort/gort.h>

using namespace std::chrono_literals;

__attribute__((noinline)) void sleepy_function() {
  gort::sleep_for(1h);
  asm volatile("" ::: "memory");  // not a tail call: the frame stays
}

__attribute__((noinline)) void waiting_on_channel(gort::Chan<int>& c) {
  (void)c.recv();
  asm volatile("" ::: "memory");
}

int main() {
  return gort::run([] {
    gort::Chan<int> never;
    gort::spawn(gort::SpawnOptions{0, "sleeper"}, [] { sleepy_function(); });
    for (int i = 0; i < 3; ++i)
      gort::spawn(gort::SpawnOptions{0, "channel waiter"}, [&never] { waiting_on_channel(never); });
    gort::sleep_for(50ms);  // they park
    std::printf("ready\n");
    std::fflush(stdout);
    gort::sleep_for(1h);
    return 0;
  });
}
