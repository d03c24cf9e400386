// gort_echo_server: the gort side of bench/net: a TCP echo server, one fiber
// per connection, read up to 4 KiB then write it back (the same loop as
// bench/peers/go-echo).
//
//   gort_echo_server [ADDRESS]      (default 127.0.0.1:0)
//
// Prints "listening on ADDR" once ready. Workers: one per CPU in the
// affinity mask, as for any gort program (run_echo.py pins it to one CPU).
#include <gort/gort.h>
#include <gort/net.h>

#include <cstdio>
#include <cstring>

int main(int argc, char** argv) {
  bool help = argc == 2 && (std::strcmp(argv[1], "--help") == 0 || std::strcmp(argv[1], "-h") == 0);
  if (argc > 2 || help || (argc == 2 && argv[1][0] == '-')) {
    std::fprintf(help ? stdout : stderr,
                 "usage: %s [ADDRESS]   (default 127.0.0.1:0)\n"
                 "TCP echo server for bench/net, a fiber per connection; prints \"listening on ADDR\".\n",
                 argv[0]);
    return help ? 0 : 2;
  }
  const char* address = argc > 1 ? argv[1] : "127.0.0.1:0";
  return gort::run([&] {
    auto ln = gort::net::listen_tcp(address);
    if (!ln) {
      std::fprintf(stderr, "listen %s: %s\n", address, ln.error().message().c_str());
      return 1;
    }
    std::printf("listening on %s\n", ln->local_address()->to_string().c_str());
    std::fflush(stdout);
    for (;;) {
      auto c = ln->accept();
      if (!c) {
        std::fprintf(stderr, "accept: %s\n", c.error().message().c_str());
        return 1;
      }
      go_spawn(
          [](gort::net::Conn conn) {
            char buf[4096];
            for (;;) {
              auto n = conn.read(buf, sizeof buf);
              if (!n || !conn.write_all(buf, *n)) return;
            }
          },
          std::move(*c));
    }
  });
}
