// instr_core: the switch-path operations, one at a time, for counting
// instructions under callgrind (bench/instr/instr_core.py). Wall time is not
// measured here: the script runs each operation at two counts and divides
// the difference in instructions by the difference in counts, which cancels
// start-up and teardown.
//
//   gort_instr_core yield N        N yields of the main fiber against a partner that yields back
//   gort_instr_core pingpong N     N round trips over two unbuffered channels
//   gort_instr_core spawn N        N times: spawn a fiber, let it run, wait for it
// One worker, so every operation takes the same path on every run.
#include <gort/chan.h>
#include <gort/gort.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>

namespace {

void yields(long n) {
  bool stop = false;
  gort::WaitGroup wg;
  wg.add(1);
  go_spawn([&] {
    while (!stop) gort::yield();
    wg.done();
  });
  for (long i = 0; i < n; ++i) gort::yield();
  stop = true;
  wg.wait();
}

void pingpong(long n) {
  gort::Chan<int> ping, pong;
  go_spawn([&] {
    for (long i = 0; i < n; ++i) pong.send(ping.recv().value() + 1);
  });
  int v = 0;
  for (long i = 0; i < n; ++i) {
    ping.send(v);
    v = pong.recv().value();
  }
  if (v != n) std::abort();  // each round trip adds one
}

void spawns(long n) {
  gort::WaitGroup wg;
  for (long i = 0; i < n; ++i) {
    wg.add(1);
    go_spawn([&] { wg.done(); });
    wg.wait();
  }
}

}  // namespace

int main(int argc, char** argv) {
  bool help = argc == 2 && (std::strcmp(argv[1], "--help") == 0 || std::strcmp(argv[1], "-h") == 0);
  if (argc != 3 || help) {
    std::fprintf(help ? stdout : stderr,
                 "usage: %s yield|pingpong|spawn N\n"
                 "Does N of the operation on one worker (for callgrind: bench/instr/instr_core.py).\n",
                 argv[0]);
    return help ? 0 : 2;
  }
  long n = std::strtol(argv[2], nullptr, 10);
  if (n <= 0) {
    std::fprintf(stderr, "%s: N must be a positive integer\n", argv[0]);
    return 2;
  }
  void (*op)(long) = nullptr;
  if (std::strcmp(argv[1], "yield") == 0) op = yields;
  if (std::strcmp(argv[1], "pingpong") == 0) op = pingpong;
  if (std::strcmp(argv[1], "spawn") == 0) op = spawns;
  if (op == nullptr) {
    std::fprintf(stderr, "%s: unknown operation '%s' (yield, pingpong or spawn)\n", argv[0], argv[1]);
    return 2;
  }
  return gort::run(gort::Config{.workers = 1}, [&] { op(n); });
}
