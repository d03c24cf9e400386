// select_chat -- the chat room (room.h) on one thread with select().
//
// Each iteration watches the listener, the stop eventfd, every client for
// reading and the clients with queued output for writing.  Descriptors >=
// FD_SETSIZE are refused (told kServerBusy and closed): FD_SET cannot hold
// them.  Each iteration accepts at most kAcceptsPerRound clients, so the
// departures of clients already accepted are reaped between rounds: a
// backlog full of clients that have gone again does not push a live
// newcomer's descriptor past FD_SETSIZE.

#include <cerrno>
#include <cstdio>

#include <fcntl.h>
#include <sys/select.h>
#include <sys/socket.h>
#include <unistd.h>

#include "chat/room.h"
#include "common/line_framer.h"
#include "common/server_main.h"

namespace {

constexpr int kAcceptsPerRound = 64;

void serve(common::ServerContext& ctx) {
  chat::Room room;
  while (!ctx.stopping()) {
    fd_set readable, writable;
    FD_ZERO(&readable);
    FD_ZERO(&writable);
    FD_SET(ctx.listener(), &readable);
    FD_SET(ctx.stop_fd(), &readable);
    int max_fd = std::max(ctx.listener(), ctx.stop_fd());
    for (auto& [fd, client] : room.clients()) {
      FD_SET(fd, &readable);
      if (!client.queued.empty()) FD_SET(fd, &writable);
      max_fd = std::max(max_fd, fd);
    }
    if (select(max_fd + 1, &readable, &writable, nullptr, nullptr) < 0) {
      if (errno == EINTR) continue;
      std::perror("select");
      return;
    }
    for (auto& [fd, client] : room.clients()) {
      if (FD_ISSET(fd, &writable)) room.on_writable(client);
      if (FD_ISSET(fd, &readable)) room.on_readable(client);
    }
    if (FD_ISSET(ctx.listener(), &readable)) {
      for (int i = 0, fd; i < kAcceptsPerRound && (fd = ctx.accept_connection(/*nonblocking=*/true)) >= 0; ++i) {
        if (fd >= FD_SETSIZE) {
          std::fprintf(stderr, "select_chat: descriptor %d >= FD_SETSIZE (%d): connection refused\n", fd, FD_SETSIZE);
          (void)send(fd, common::kServerBusy.data(), common::kServerBusy.size(), MSG_DONTWAIT | MSG_NOSIGNAL);
          close(fd);
          continue;
        }
        room.join(fd);
      }
    }
    room.reap();
  }
}

}  // namespace

int main(int argc, char** argv) { return common::server_main(argc, argv, "select_chat", serve); }
