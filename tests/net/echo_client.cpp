// net_echo_client: opens N connections to an echo server, holds them all
// open at once, runs R round trips of S bytes on each, checks every echoed
// byte, closes. Exit status 0 if all went well. Used by the net tests as a
// separate process.
//
//   net_echo_client ADDRESS CONNECTIONS ROUNDS SIZE [DELAY_MS]
#include <gort/gort.h>
#include <gort/net.h>

#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

using namespace std::chrono_literals;

int main(int argc, char** argv) {
  if (argc < 5) {
    std::fprintf(stderr, "usage: %s ADDRESS CONNECTIONS ROUNDS SIZE [DELAY_MS]\n", argv[0]);
    return 2;
  }
  std::string address = argv[1];
  int conns = std::atoi(argv[2]);
  int rounds = std::atoi(argv[3]);
  std::size_t size = std::size_t(std::atoi(argv[4]));
  int delay_ms = argc > 5 ? std::atoi(argv[5]) : 0;
  std::atomic<int> failures{0};
  return gort::run([&] {
    if (delay_ms > 0) gort::sleep_for(std::chrono::milliseconds(delay_ms));
    gort::WaitGroup connected, done;
    gort::WaitGroup start;
    start.add(1);
    connected.add(conns);
    done.add(conns);
    for (int i = 0; i < conns; ++i) {
      go_spawn([&, i] {
        auto c = gort::net::dial_tcp(address, 30s);
        if (!c) {
          if (failures++ < 5) std::fprintf(stderr, "dial %d: %s\n", i, c.error().message().c_str());
          connected.done();
          done.done();
          return;
        }
        std::string out(size, char('a' + i % 26)), in(size, '\0');
        // The first round trip proves the server accepted and serves this
        // connection; then every connection waits until all are that far,
        // so all are open at once on both sides.
        for (int r = 0; r < rounds; ++r) {
          if (r == 1) start.wait();
          out[0] = char('0' + r % 10);
          auto w = c->write_all(out);
          std::size_t got = 0;
          while (w && got < size) {
            auto n = c->read(in.data() + got, size - got);
            if (!n) {
              if (failures++ < 5) std::fprintf(stderr, "read %d: %s\n", i, n.error().message().c_str());
              break;
            }
            got += *n;
          }
          if (r == 0) connected.done();
          if (!w || got != size || in != out) {
            if (r == 0) start.wait();
            if (w && got == size && failures++ < 5) std::fprintf(stderr, "conn %d: echo mismatch\n", i);
            if (!w && failures++ < 5) std::fprintf(stderr, "write %d: %s\n", i, w.error().message().c_str());
            break;
          }
        }
        (void)c->close();
        done.done();
      });
    }
    connected.wait();
    start.done();
    done.wait();
    if (failures.load() != 0) std::fprintf(stderr, "%d connections failed\n", failures.load());
    return failures.load() == 0 ? 0 : 1;
  });
}
