// epoll_chat -- the chat room (room.h) on one thread with level-triggered
// epoll.  Every client is registered for EPOLLIN; EPOLLOUT is added while it
// has queued output (Room::take_write_changes) and removed once drained.

#include <array>
#include <cerrno>
#include <cstdio>

#include <sys/epoll.h>
#include <unistd.h>

#include "chat/room.h"
#include "common/server_main.h"

namespace {

void watch(int epoll_fd, int op, int fd, std::uint32_t events) {
  epoll_event ev{};
  ev.events = events;
  ev.data.fd = fd;
  epoll_ctl(epoll_fd, op, fd, &ev);
}

void serve(common::ServerContext& ctx) {
  int epoll_fd = epoll_create1(EPOLL_CLOEXEC);
  watch(epoll_fd, EPOLL_CTL_ADD, ctx.listener(), EPOLLIN);
  watch(epoll_fd, EPOLL_CTL_ADD, ctx.stop_fd(), EPOLLIN);
  chat::Room room;
  std::array<epoll_event, 128> events;
  while (!ctx.stopping()) {
    int n = epoll_wait(epoll_fd, events.data(), static_cast<int>(events.size()), -1);
    if (n < 0 && errno != EINTR) {
      std::perror("epoll_wait");
      break;
    }
    for (int i = 0; i < n; ++i) {
      int fd = events[i].data.fd;
      if (fd == ctx.stop_fd()) break;
      if (fd == ctx.listener()) {
        for (int conn; (conn = ctx.accept_connection(/*nonblocking=*/true)) >= 0;) {
          watch(epoll_fd, EPOLL_CTL_ADD, conn, EPOLLIN);
          room.join(conn);
        }
        continue;
      }
      auto it = room.clients().find(fd);
      if (it == room.clients().end()) continue;
      if (events[i].events & (EPOLLOUT | EPOLLERR)) room.on_writable(it->second);
      if (events[i].events & (EPOLLIN | EPOLLHUP | EPOLLERR)) room.on_readable(it->second);
    }
    room.reap();  // close() takes the descriptors out of the epoll set
    for (int fd : room.take_write_changes()) {
      auto it = room.clients().find(fd);
      if (it != room.clients().end())
        watch(epoll_fd, EPOLL_CTL_MOD, fd, EPOLLIN | (it->second.queued.empty() ? 0u : EPOLLOUT));
    }
  }
  close(epoll_fd);
}

}  // namespace

int main(int argc, char** argv) { return common::server_main(argc, argv, "epoll_chat", serve); }
