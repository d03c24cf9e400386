// gort_echo_load: the load client of bench/net, the same program for every
// server. Prints one JSON line: {"mode":..,"conns":..,"requests":..,"seconds":..}.
//
//   gort_echo_load ADDRESS MODE CONNS SIZE SECONDS
//     MODE pingpong: each connection sends SIZE bytes, waits for all SIZE
//                    back, repeats; a request is one round trip.
//     MODE stream:   each connection has a writer fiber sending SIZE-byte
//                    messages back to back and a reader counting the echo;
//                    a request is one message echoed.
// Connections are opened and warmed up (one round trip) before the clock
// starts.
#include <gort/gort.h>
#include <gort/net.h>

#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

using namespace std::chrono_literals;
using gort::net::Conn;

namespace {

bool read_exactly(Conn& c, char* p, std::size_t n) {
  while (n > 0) {
    auto got = c.read(p, n);
    if (!got) return false;
    p += *got;
    n -= *got;
  }
  return true;
}

}  // namespace

int main(int argc, char** argv) {
  bool help = argc == 2 && (std::strcmp(argv[1], "--help") == 0 || std::strcmp(argv[1], "-h") == 0);
  if (argc != 6 || help) {
    std::fprintf(help ? stdout : stderr,
                 "usage: %s ADDRESS pingpong|stream CONNS SIZE SECONDS\n"
                 "Echo load for bench/net (run_echo.py): CONNS connections send SIZE-byte\n"
                 "messages for SECONDS; prints one JSON line of requests and seconds.\n",
                 argv[0]);
    return help ? 0 : 2;
  }
  std::string address = argv[1], mode = argv[2];
  char* end = nullptr;
  long nconns_arg = std::strtol(argv[3], &end, 10);
  bool conns_ok = *end == '\0' && nconns_arg > 0 && nconns_arg <= 1'000'000;
  long size_arg = std::strtol(argv[4], &end, 10);
  bool size_ok = *end == '\0' && size_arg > 0 && size_arg <= 16 * 1024 * 1024;
  double seconds = std::strtod(argv[5], &end);
  bool seconds_ok = *end == '\0' && seconds > 0 && seconds <= 86400;
  if (mode != "pingpong" && mode != "stream") {
    std::fprintf(stderr, "%s: MODE must be pingpong or stream, not '%s'\n", argv[0], mode.c_str());
    return 2;
  }
  if (!conns_ok || !size_ok || !seconds_ok) {
    std::fprintf(stderr, "%s: CONNS must be 1-1000000, SIZE 1-16777216 bytes, SECONDS in (0, 86400]\n", argv[0]);
    return 2;
  }
  int nconns = int(nconns_arg);
  std::size_t size = std::size_t(size_arg);
  std::atomic<int64_t> requests{0};
  std::atomic<bool> stop{false};
  return gort::run([&] {
    std::vector<Conn> conns;
    std::string msg(size, 'x'), in(size, '\0');
    for (int i = 0; i < nconns; ++i) {
      auto c = gort::net::dial_tcp(address, 10s);
      if (!c || !c->write_all(msg) || !read_exactly(*c, in.data(), size)) {
        std::fprintf(stderr, "connection %d failed\n", i);
        return 1;
      }
      conns.push_back(std::move(*c));
    }
    gort::WaitGroup wg;
    auto start = gort::Clock::now();
    for (auto& c : conns) {
      if (mode == "pingpong") {
        wg.add(1);
        go_spawn([&] {
          std::string buf(size, '\0');
          int64_t local = 0;
          while (!stop.load(std::memory_order_relaxed)) {
            if (!c.write_all(msg) || !read_exactly(c, buf.data(), size)) break;
            ++local;
          }
          requests += local;
          wg.done();
        });
      } else {
        wg.add(2);
        go_spawn([&] {
          while (!stop.load(std::memory_order_relaxed))
            if (!c.write_all(msg)) break;
          (void)c.shutdown(gort::net::Shutdown::kWrite);
          wg.done();
        });
        go_spawn([&] {
          std::vector<char> buf(64 * 1024);
          int64_t bytes = 0;
          for (;;) {
            auto n = c.read(buf.data(), buf.size());
            if (!n) break;
            bytes += int64_t(*n);
          }
          requests += bytes / int64_t(size);
          wg.done();
        });
      }
    }
    gort::sleep_for(std::chrono::duration<double>(seconds));
    stop = true;
    auto elapsed = std::chrono::duration<double>(gort::Clock::now() - start).count();
    wg.wait();
    // Stream mode counts the tail echoed after the stop; ping-pong at most
    // one request per connection. Both are noise at these durations.
    std::printf("{\"mode\":\"%s\",\"conns\":%d,\"requests\":%lld,\"seconds\":%.4f}\n", mode.c_str(), nconns,
                (long long)requests.load(), elapsed);
    for (auto& c : conns) (void)c.close();
    return 0;
  });
}
