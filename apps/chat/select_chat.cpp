// select_chat -- the chat room (room.h) on one thread with select().
//
// Each iteration watches the listener, the stop eventfd, every client for
// reading and the clients with queued output for writing.  Descriptors >=
// FD_SETSIZE are refused (closed at once): FD_SET cannot hold them.

#include <cerrno>
#include <cstdio>

#include <fcntl.h>
#include <sys/select.h>
#include <unistd.h>

#include "chat/room.h"
#include "dumb/server_main.h"

namespace {

void serve(dumb::ServerContext& ctx) {
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
      for (int fd; (fd = ctx.accept_connection(/*nonblocking=*/true)) >= 0;) {
        if (fd >= FD_SETSIZE) {
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

int main(int argc, char** argv) { return dumb::server_main(argc, argv, "select_chat", serve); }
