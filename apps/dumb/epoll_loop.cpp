// dumb/epoll_loop.cpp -- see epoll_loop.h.

#include "dumb/epoll_loop.h"

#include <array>
#include <cerrno>
#include <cstdio>

#include <sys/epoll.h>
#include <unistd.h>

#include "dumb/event_connection.h"
#include "dumb/timer_heap.h"

namespace dumb {

namespace {
// epoll_event.data.ptr of the two fds that are not connections.
char listener_tag;
char stop_tag;

std::uint32_t mask_of(EventConnection::Interest interest) {
  switch (interest) {
    case EventConnection::Interest::kRead: return EPOLLIN;
    case EventConnection::Interest::kWrite: return EPOLLOUT;
    case EventConnection::Interest::kNone: return 0;
  }
  return 0;
}
}  // namespace

struct EpollLoop::Slot {
  explicit Slot(int fd, std::uint64_t serial) : conn(fd), serial(serial) {}
  EventConnection conn;
  std::uint64_t serial;            // tells this connection from a later one on the same fd
  std::uint32_t events = EPOLLIN;  // mask currently registered
  Clock::time_point armed{};       // deadline last pushed on the timer heap
};

EpollLoop::EpollLoop(common::ServerContext& ctx, bool shared_listener)
    : ctx_(ctx), epoll_fd_(epoll_create1(EPOLL_CLOEXEC)), shared_listener_(shared_listener) {}

EpollLoop::~EpollLoop() { close(epoll_fd_); }

void EpollLoop::stop_accepting() {
  if (!accepting_) return;
  accepting_ = false;
  epoll_ctl(epoll_fd_, EPOLL_CTL_DEL, ctx_.listener(), nullptr);  // it hangs up once shut down
  epoll_ctl(epoll_fd_, EPOLL_CTL_DEL, ctx_.stop_fd(), nullptr);   // it stays readable
}

void EpollLoop::accept_all() {
  for (int i = 0; i < 64; ++i) {  // bounded: connections already accepted get their turn
    int fd = ctx_.accept_connection(/*nonblocking=*/true);
    if (fd < 0) {
      if (errno == EINVAL || ctx_.stopping()) stop_accepting();
      return;
    }
    ctx_.track(fd);
    auto slot = std::make_unique<Slot>(fd, next_serial_++);
    epoll_event ev{};
    ev.events = EPOLLIN;
    ev.data.ptr = slot.get();
    epoll_ctl(epoll_fd_, EPOLL_CTL_ADD, fd, &ev);
    slots_.emplace(fd, std::move(slot));
  }
}

void EpollLoop::close_slot(Slot& slot) {
  int fd = slot.conn.fd();
  ctx_.untrack_and_close(fd);  // close() also removes it from the epoll set
  slots_.erase(fd);
}

void EpollLoop::drive(Slot& slot, Clock::time_point now) {
  if (!slot.conn.drive(now, ctx_.stopping())) return close_slot(slot);
  std::uint32_t events = mask_of(slot.conn.interest());
  if (events != slot.events) {
    epoll_event ev{};
    ev.events = events;
    ev.data.ptr = &slot;
    epoll_ctl(epoll_fd_, EPOLL_CTL_MOD, slot.conn.fd(), &ev);
    slot.events = events;
  }
  if (slot.conn.state() == EventConnection::State::kWaiting && slot.armed != slot.conn.deadline()) {
    slot.armed = slot.conn.deadline();
    timers_.push(slot.armed, {slot.conn.fd(), slot.serial});
  }
}

void EpollLoop::run() {
  epoll_event ev{};
  ev.events = EPOLLIN;
  if (shared_listener_) ev.events |= EPOLLEXCLUSIVE;
  ev.data.ptr = &listener_tag;
  epoll_ctl(epoll_fd_, EPOLL_CTL_ADD, ctx_.listener(), &ev);
  ev.events = EPOLLIN;
  ev.data.ptr = &stop_tag;
  epoll_ctl(epoll_fd_, EPOLL_CTL_ADD, ctx_.stop_fd(), &ev);

  std::array<epoll_event, 128> events;
  while (accepting_ || !slots_.empty()) {
    int n = epoll_wait(epoll_fd_, events.data(), static_cast<int>(events.size()), timers_.timeout_ms(Clock::now()));
    if (n < 0 && errno != EINTR) {
      std::perror("epoll_wait");
      break;
    }
    Clock::time_point now = Clock::now();
    for (int i = 0; i < n; ++i) {
      void* tag = events[i].data.ptr;
      if (tag == &stop_tag) {
        stop_accepting();
      } else if (tag == &listener_tag) {
        if (accepting_) accept_all();
      } else {
        auto* slot = static_cast<Slot*>(tag);
        // A hang-up or error while nothing is registered (a WAIT) would be
        // reported forever: the peer is gone, so is the connection.
        if ((events[i].events & (EPOLLHUP | EPOLLERR)) && slot->events == 0) {
          close_slot(*slot);
        } else {
          drive(*slot, now);
        }
      }
    }
    while (auto key = timers_.pop_due(now)) {
      auto it = slots_.find(key->fd);
      if (it != slots_.end() && it->second->serial == key->serial) drive(*it->second, now);
    }
  }
  for (auto& [fd, slot] : slots_) ctx_.untrack_and_close(fd);  // only after an epoll_wait failure
}

}  // namespace dumb
