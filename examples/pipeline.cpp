// A channel pipeline: a generator, a squaring stage, and a consumer that
// selects between results and a timeout. Go's "pipelines" pattern.
#include <gort/gort.h>

#include <cstdio>

#include "usage.h"

using namespace std::chrono_literals;

constexpr const char* kAbout =
    "A channel pipeline: a generator, a squaring stage, and a consumer that\n"
    "selects between results and a timeout.";

int main(int argc, char** argv) {
  if (int rc = example_usage(argc, argv, "", kAbout); rc >= 0) return rc;
  return gort::run([] {
    // The stages share the channels by reference: main owns them and waits
    // for the stages before returning.
    gort::Chan<int> numbers;
    gort::Chan<int> squares(4);
    gort::WaitGroup stages;
    stages.add(2);
    go_spawn([&] {
      for (int i = 1; i <= 10; ++i) numbers.send(i);
      numbers.close();
      stages.done();
    });
    go_spawn([&] {
      for (int n : numbers) squares.send(n * n);
      squares.close();
      stages.done();
    });

    int sum = 0;
    bool open = true;
    while (open) {
      gort::select(gort::on_recv(squares, [&](std::optional<int> v) { v ? void(sum += *v) : void(open = false); }),
                   gort::on_recv(gort::after(5s), [&](auto) {
                     std::puts("pipeline: timed out");
                     open = false;
                   }));
    }
    stages.wait();
    std::printf("pipeline: sum of squares 1..10 = %d\n", sum);

    // Nobody sends on `idle`: the timeout case wins.
    gort::Chan<int> idle;
    int chosen = gort::select(gort::on_recv(idle), gort::on_recv(gort::after(20ms)));
    std::printf("pipeline: idle channel -> %s\n", chosen == 1 ? "timeout" : "value");
    return sum == 385 && chosen == 1 ? 0 : 1;
  });
}
