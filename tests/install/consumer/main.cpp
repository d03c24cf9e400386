// The README's example, plus a Context, a Ticker and gort::net, built
// against the installed package (gort::gort: the runtime and gort::net).
#include <gort/gort.h>
#include <gort/net.h>

#include <atomic>
#include <cstdio>

using namespace std::chrono_literals;

int main() {
  return gort::run([] {
    gort::WaitGroup wg;
    std::atomic<int> sum{0};
    wg.add(2);
    go_spawn([&] {
      gort::sleep_for(10ms);
      sum += 1;
      wg.done();
    });
    go_spawn(
        [&](int x) {
          sum += x;
          wg.done();
        },
        42);
    wg.wait();

    // A Ticker under a Context's deadline.
    auto [ctx, cancel] = gort::with_timeout(gort::background(), 10s);
    gort::Ticker tick(5ms);
    int ticks = 0;
    while (ticks < 3 && gort::select(gort::on_recv(ctx.done()), gort::on_recv(tick.chan())) == 1) ++ticks;

    // gort::net: one line over loopback, the accept cancelled afterwards.
    auto ln = gort::net::listen_tcp("127.0.0.1:0");
    if (!ln) return 1;
    auto client = gort::net::dial_tcp(ctx, ln->local_address()->to_string());
    auto server = ln->accept(ctx);
    if (!client || !server || !client->write_all(ctx, "hi\n")) return 1;
    auto line = server->read_line(ctx);
    cancel();
    bool canceled = ln->accept(ctx).error() == gort::net::Errc::kCanceled;

    std::printf("consumer: ticks=%d line=%s canceled=%d\n", ticks, line ? line->c_str() : "?", int(canceled));
    std::printf("consumer: sum=%d\n", sum.load());
    return sum == 43 && ticks == 3 && line && *line == "hi" && canceled ? 0 : 1;
  });
}
