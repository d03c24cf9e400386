// line_client -- a small netcat for talking to the servers by hand:
//
//   printf 'PING\n' | line_client 8090          # PONG
//   line_client 127.0.0.1 8091                   # type lines to the chat server
//
// It connects to HOST:PORT (HOST defaults to 127.0.0.1), copies stdin to the
// connection and the connection to stdout.  When stdin ends it shuts down its
// sending side, as `nc -N` does, and goes on printing what the server sends
// until the server closes the connection; then it exits 0 at once, whether or
// not stdin has ended (1 on an error, 2 on a usage error).
//
// Two fibers, as Go would write it: the main fiber copies the connection to
// stdout; a second one copies stdin to the connection.  stdin may be a
// terminal, whose read blocks its thread, so it is read through
// gort::blocking and never holds a worker.  The exit when the server closes
// is _exit: a read of a terminal cannot be cancelled, and gort::run would
// wait for it.

#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>

#include <gort/blocking.h>
#include <gort/gort.h>
#include <gort/net.h>

namespace {

constexpr const char* kUsage =
    "usage: line_client [HOST] PORT\n"
    "Copies stdin to HOST:PORT (HOST defaults to 127.0.0.1) and what the server\n"
    "sends to stdout, until the server closes the connection.\n";

int usage() {
  std::fputs(kUsage, stderr);
  return 2;
}

bool write_stdout(const char* data, std::size_t n) {
  while (n > 0) {
    ssize_t w = ::write(STDOUT_FILENO, data, n);
    if (w < 0) return false;
    data += w;
    n -= std::size_t(w);
  }
  return true;
}

// stdin to the connection; at the end of stdin, shut down the sending side.
void send_stdin(gort::net::Conn& conn) {
  char buf[4096];
  for (;;) {
    ssize_t n = gort::blocking([&] { return ::read(STDIN_FILENO, buf, sizeof buf); });
    if (n <= 0) {
      (void)conn.shutdown(gort::net::Shutdown::kWrite);
      return;
    }
    if (!conn.write_all(buf, std::size_t(n))) return;
  }
}

}  // namespace

int main(int argc, char** argv) {
  if (argc == 2 && (std::strcmp(argv[1], "--help") == 0 || std::strcmp(argv[1], "-h") == 0)) {
    std::fputs(kUsage, stdout);
    return 0;
  }
  if (argc < 2 || argc > 3) return usage();
  const std::string host = argc == 3 ? argv[1] : "127.0.0.1";
  const std::string port = argv[argc - 1];
  if (port.empty() || port.find_first_not_of("0123456789") != std::string::npos) return usage();
  return gort::run([&] {
    auto conn = gort::net::dial_tcp(host + ":" + port, std::chrono::seconds(5));
    if (!conn) {
      std::fprintf(stderr, "line_client: cannot connect to %s:%s: %s\n", host.c_str(), port.c_str(),
                   gort::net::to_string(conn.error().code()));
      return 1;
    }
    go_spawn([&c = *conn] { send_stdin(c); });
    char buf[4096];
    for (;;) {
      auto n = conn->read(buf, sizeof buf);
      if (!n) {
        bool closed = n.error() == gort::net::Errc::kEof;
        if (!closed) std::fprintf(stderr, "line_client: %s\n", gort::net::to_string(n.error().code()));
        ::_exit(closed ? 0 : 1);
      }
      if (!write_stdout(buf, *n)) ::_exit(1);
    }
  });
}
