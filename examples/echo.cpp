// A TCP echo server and a client in one program. gort::net::Server runs the
// handler for each connection in its own fiber; shutdown() stops it
// gracefully: the listener closes, a handler waiting in read gets end of
// file and returns, and shutdown() returns once every handler has (after
// its deadline it would close the connections left).
#include <gort/gort.h>
#include <gort/net.h>

#include <cstdio>
#include <string>

#include "usage.h"

using namespace std::chrono_literals;

constexpr const char* kAbout =
    "A TCP echo server on gort::net::Server and a client in one program;\n"
    "shutdown() stops the server gracefully.";

int main(int argc, char** argv) {
  if (int rc = example_usage(argc, argv, "", kAbout); rc >= 0) return rc;
  return gort::run([] {
    auto ln = gort::net::listen_tcp("127.0.0.1:0");
    if (!ln) {
      std::printf("echo: %s\n", ln.error().message().c_str());
      return 1;
    }
    std::string address = ln->local_address()->to_string();

    // One connection: echo until end of file (the client's, or shutdown's)
    // or an error. The Server closes the Conn when this returns.
    gort::net::Server server([](const gort::Context&, gort::net::Conn& c) {
      char buf[4096];
      for (;;) {
        auto n = c.read(buf, sizeof buf);
        if (!n || !c.write_all(buf, *n)) return;  // kEof, kReset, ...
      }
    });
    gort::WaitGroup serving;
    serving.add(1);
    go_spawn([&] {
      (void)server.serve(*ln);  // Errc::kClosed once shut down
      serving.done();
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

    // Shutdown with the client still connected: its handler, idle in read,
    // gets end of file, and the client sees the server close its side.
    auto stopped = server.shutdown(gort::Clock::now() + 5s);
    serving.wait();
    auto after = conn->read_line();
    if (!stopped || after || after.error() != gort::net::Errc::kEof) {
      std::printf("echo: shutdown: %s\n", stopped ? "the connection stayed open" : stopped.error().message().c_str());
      return 1;
    }
    std::printf("echo: server stopped cleanly\n");
    return echoed == 3 ? 0 : 1;
  });
}
