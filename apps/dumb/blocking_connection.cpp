// dumb/blocking_connection.cpp -- see blocking_connection.h.

#include "dumb/blocking_connection.h"

#include <array>
#include <cerrno>
#include <string_view>
#include <thread>

#include <poll.h>
#include <unistd.h>

#include "dumb/protocol.h"

namespace dumb {
namespace {

bool write_all(int fd, std::string_view bytes) {
  while (!bytes.empty()) {
    ssize_t n = write(fd, bytes.data(), bytes.size());
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    bytes.remove_prefix(static_cast<std::size_t>(n));
  }
  return true;
}

// Sleeps until `deadline` unless the peer resets the connection first;
// false then.  poll() with no events reports only POLLERR/POLLHUP, which a
// reset raises: the bytes of pipelined requests and a half-close (both
// legitimate during a WAIT) do not end the sleep.
bool sleep_unless_reset(int fd, std::chrono::steady_clock::time_point deadline) {
  for (;;) {
    auto left = std::chrono::ceil<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) return true;
    pollfd p{fd, 0, 0};
    int n = poll(&p, 1, static_cast<int>(left.count()));
    if (n > 0) return false;  // reset or hang-up: nobody will read the DONE
    if (n < 0 && errno != EINTR) {
      std::this_thread::sleep_until(deadline);
      return true;
    }
  }
}

// Executes one action; false if the peer is gone.
bool perform(int fd, const Action& action) {
  switch (action.kind) {
    case Action::Kind::kReply: return write_all(fd, action.reply);
    case Action::Kind::kWait:
      if (!sleep_unless_reset(fd, std::chrono::steady_clock::now() + std::chrono::milliseconds(action.wait_ms)))
        return false;
      return write_all(fd, kDone);
    case Action::Kind::kStream:
      for (StreamCursor cursor(action.stream_bytes); !cursor.done();) {
        std::string_view chunk = cursor.peek();  // <= 64 KiB: the bound on what one write holds up
        if (!write_all(fd, chunk)) return false;
        cursor.consume(chunk.size());
      }
      return true;
  }
  return false;
}

}  // namespace

void serve_blocking_connection(common::ServerContext& ctx, int fd) {
  ctx.track(fd);
  Session session;
  std::array<char, 16384> buf;
  for (bool open = true; open && !ctx.stopping();) {
    ssize_t n = read(fd, buf.data(), buf.size());
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;  // EOF (or a stop's shutdown): the buffered requests were all answered
    std::string_view in(buf.data(), static_cast<std::size_t>(n));
    while (open && !ctx.stopping()) {
      auto action = session.next(in);
      if (!action) break;
      open = perform(fd, *action);
    }
  }
  ctx.untrack_and_close(fd);
}

void serve_connections_in_turn(common::ServerContext& ctx) {
  for (;;) {
    int fd = ctx.accept_connection(/*nonblocking=*/false);
    if (fd >= 0) {
      serve_blocking_connection(ctx, fd);
    } else if (ctx.stopping()) {
      return;
    }
    // else: out of descriptors; accept_connection refused one, try again
  }
}

}  // namespace dumb
