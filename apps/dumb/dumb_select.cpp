// dumb_select -- one thread, select(), a state machine per connection
// (event_connection.h).
//
// Every iteration rebuilds the read and write sets from the connections'
// interests and computes select()'s timeout from the earliest WAIT deadline
// (a linear scan: select is O(connections) per call anyway).  An fd_set is a
// fixed bitmap of FD_SETSIZE (1024) bits; FD_SET on a larger descriptor
// writes past it.  So a connection whose descriptor is >= FD_SETSIZE is
// refused -- told kServerBusy and closed at once -- and the server goes on (with the default
// `ulimit -n` of 1024, accept() runs out of descriptors first, and
// accept_connection refuses the connection through its spare descriptor).
// A connection in a WAIT is watched for a reset too (peek_while_waiting).
// BURN runs inline on the loop thread (8 MiB stack) and stalls every
// connection meanwhile.  Breaks at: ~1000 connections (FD_SETSIZE), and long
// before that at O(n) work per event.

#include <cstdio>
#include <map>
#include <memory>
#include <optional>
#include <set>

#include <fcntl.h>
#include <sys/select.h>
#include <sys/socket.h>

#include "common/server_main.h"
#include "dumb/event_connection.h"

namespace {

using dumb::Clock;
using dumb::EventConnection;
using Connections = std::map<int, std::unique_ptr<EventConnection>>;  // by fd

// Accepts what is pending; false once the listener is shut (stop).
bool accept_some(common::ServerContext& ctx, Connections& connections) {
  for (int i = 0; i < 64; ++i) {
    int fd = ctx.accept_connection(/*nonblocking=*/true);
    if (fd < 0) return !(errno == EINVAL || ctx.stopping());
    if (fd >= FD_SETSIZE) {
      std::fprintf(stderr, "dumb_select: descriptor %d >= FD_SETSIZE (%d): connection refused\n", fd, FD_SETSIZE);
      (void)send(fd, dumb::kServerBusy.data(), dumb::kServerBusy.size(), MSG_DONTWAIT | MSG_NOSIGNAL);
      close(fd);
      continue;
    }
    ctx.track(fd);
    connections.emplace(fd, std::make_unique<EventConnection>(fd));
  }
  return true;
}

timeval until(Clock::time_point deadline, Clock::time_point now) {
  auto us = deadline <= now ? 0 : std::chrono::ceil<std::chrono::microseconds>(deadline - now).count();
  return timeval{static_cast<time_t>(us / 1000000), static_cast<suseconds_t>(us % 1000000)};
}

// A connection in a WAIT has nothing to read or write, but its peer may
// reset it; select() reports that as readability.  So a waiting connection
// is watched for reading, and when it becomes readable a one-byte peek says
// why: an error -- the peer is gone, the connection is closed at once; data
// (pipelined requests) or EOF (a half-close, still owed its DONE) -- it is
// not watched again until the WAIT ends, since level-triggered readiness
// would report it on every pass.  Returns false if the peer is gone.
bool peek_while_waiting(int fd) {
  char byte;
  ssize_t n = recv(fd, &byte, 1, MSG_PEEK | MSG_DONTWAIT);
  return n >= 0 || errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR;
}

void serve(common::ServerContext& ctx) {
  Connections connections;
  std::set<int> peeked;  // waiting connections that showed data or EOF: not watched until their WAIT ends
  bool accepting = true;
  while (accepting || !connections.empty()) {
    fd_set readable, writable;
    FD_ZERO(&readable);
    FD_ZERO(&writable);
    int max_fd = -1;
    auto watch = [&](int fd, fd_set& set) {
      FD_SET(fd, &set);
      if (fd > max_fd) max_fd = fd;
    };
    if (accepting) {
      watch(ctx.listener(), readable);
      watch(ctx.stop_fd(), readable);
    }
    std::optional<Clock::time_point> earliest;
    for (auto& [fd, conn] : connections) {
      switch (conn->interest()) {
        case EventConnection::Interest::kRead: watch(fd, readable); break;
        case EventConnection::Interest::kWrite: watch(fd, writable); break;
        case EventConnection::Interest::kNone:
          if (!earliest || conn->deadline() < *earliest) earliest = conn->deadline();
          if (!peeked.contains(fd)) watch(fd, readable);
          break;
      }
      if (conn->interest() != EventConnection::Interest::kNone) peeked.erase(fd);
    }
    timeval timeout{};
    if (earliest) timeout = until(*earliest, Clock::now());
    if (select(max_fd + 1, &readable, &writable, nullptr, earliest ? &timeout : nullptr) < 0) {
      if (errno == EINTR) continue;
      std::perror("select");
      break;
    }
    Clock::time_point now = Clock::now();
    bool was_accepting = accepting;
    if (accepting && FD_ISSET(ctx.stop_fd(), &readable)) accepting = false;
    if (accepting && FD_ISSET(ctx.listener(), &readable)) accepting = accept_some(ctx, connections);
    for (auto it = connections.begin(); it != connections.end();) {
      auto& [fd, conn] = *it;
      bool waiting = conn->interest() == EventConnection::Interest::kNone;
      bool readable_now = fd <= max_fd && FD_ISSET(fd, &readable);
      bool gone = waiting && readable_now && !peek_while_waiting(fd);
      if (waiting && readable_now && !gone) peeked.insert(fd);
      bool ready = (!waiting && (readable_now || (fd <= max_fd && FD_ISSET(fd, &writable)))) ||
                   (waiting && conn->deadline() <= now) ||
                   (was_accepting && !accepting);  // stop: let idle connections close
      if (gone || (ready && !conn->drive(now, ctx.stopping()))) {
        peeked.erase(fd);
        ctx.untrack_and_close(fd);
        it = connections.erase(it);
      } else {
        ++it;
      }
    }
  }
  for (auto& [fd, conn] : connections) ctx.untrack_and_close(fd);  // only after a select failure
}

}  // namespace

int main(int argc, char** argv) { return common::server_main(argc, argv, "dumb_select", serve); }
