// A TCP echo server and a client in one program. The server serves each
// connection in its own fiber; cancelling one Context stops it cleanly:
// accept and every connection's read return Errc::kCanceled, and a
// WaitGroup waits for the handlers.
#include <gort/gort.h>
#include <gort/net.h>

#include <cstdio>
#include <string>

using namespace std::chrono_literals;
using gort::net::Errc;

namespace {

// One connection: echo until EOF, an error or the context's cancellation.
// The Conn is destroyed (closed) when this returns.
void handle(const gort::Context& ctx, gort::net::Conn c) {
  char buf[4096];
  for (;;) {
    auto n = c.read(ctx, buf, sizeof buf);
    if (!n || !c.write_all(ctx, buf, *n)) return;  // kEof, kCanceled, ...
  }
}

// Accepts until ctx is canceled. Handlers share ctx and `handlers` by
// reference: main keeps both alive until handlers.wait() returns.
void serve(const gort::Context& ctx, gort::net::Listener& ln, gort::WaitGroup& handlers) {
  for (;;) {
    auto conn = ln.accept(ctx);
    if (!conn) {
      if (conn.error() != Errc::kCanceled) std::printf("echo: accept: %s\n", conn.error().message().c_str());
      return;
    }
    handlers.add(1);
    go_spawn([&ctx, &handlers](gort::net::Conn c) {
      handle(ctx, std::move(c));
      handlers.done();
    }, std::move(*conn));
  }
}

}  // namespace

int main() {
  return gort::run([] {
    auto ln = gort::net::listen_tcp("127.0.0.1:0");
    if (!ln) {
      std::printf("echo: %s\n", ln.error().message().c_str());
      return 1;
    }
    std::string address = ln->local_address()->to_string();
    auto [server_ctx, stop] = gort::with_cancel(gort::background());
    const gort::Context& ctx = server_ctx;
    gort::WaitGroup server, handlers;
    server.add(1);
    go_spawn([&] {
      serve(ctx, *ln, handlers);
      server.done();
    });

    // The client: three lines, each echoed back, with a 5 s budget.
    auto [client_ctx, client_done] = gort::with_timeout(gort::background(), 5s);
    auto conn = gort::net::dial_tcp(client_ctx, address);
    if (!conn) {
      std::printf("echo: %s\n", conn.error().message().c_str());
      return 1;
    }
    int echoed = 0;
    for (std::string line : {"hello", "from", "gort"}) {
      if (!conn->write_all(client_ctx, line + "\n")) break;
      auto back = conn->read_line(client_ctx);
      if (back && *back == line) ++echoed;
    }
    client_done();
    std::printf("echo: %d lines echoed\n", echoed);

    // Shutdown: the idle connection's handler and the accept loop return.
    stop();
    server.wait();
    handlers.wait();
    (void)ln->close();
    std::printf("echo: server stopped cleanly\n");
    return echoed == 3 ? 0 : 1;
  });
}
