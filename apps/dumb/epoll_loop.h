// dumb/epoll_loop.h -- a single-threaded epoll event loop over
// EventConnections, with a timer heap for WAIT.  dumb_epoll runs one;
// dumb_epoll_workers runs one per worker thread, all sharing the listener.
//
// Design: level-triggered epoll.  Each connection is registered once with
// data.ptr = its Slot, and its event mask follows the connection's interest()
// (EPOLLIN when idle, EPOLLOUT while writing, nothing while waiting -- the
// timer heap wakes it).  A WAIT pushes (deadline, fd, serial) on the heap;
// the serial tells a fired entry from a connection that has since closed and
// whose fd number was reused.  epoll_wait's timeout is the time to the
// earliest deadline, rounded up.
//
// Costs per PING: one epoll_wait (shared by everything ready), one read per
// buffer of requests, one write per reply; an epoll_ctl only when the
// interest changes (idle -> writing a STREAM and back).
// Rejected: edge-triggered epoll -- it saves epoll_ctl calls but every
// handler must then drain to EAGAIN, and the syscall budget that keeps a
// greedy client from monopolising the loop would lose wake-ups.

#pragma once

#include <cstdint>
#include <memory>
#include <unordered_map>

#include "common/server_main.h"
#include "dumb/timer_heap.h"

namespace dumb {

class EpollLoop {
 public:
  // shared_listener: the listener is also in other loops' epoll sets; it is
  // registered with EPOLLEXCLUSIVE so one connection wakes one loop.
  EpollLoop(common::ServerContext& ctx, bool shared_listener);
  ~EpollLoop();
  EpollLoop(const EpollLoop&) = delete;
  EpollLoop& operator=(const EpollLoop&) = delete;

  // Serves until stopped and every connection is closed.
  void run();

 private:
  struct Slot;
  struct TimerKey {
    int fd;
    std::uint64_t serial;
  };
  void accept_all();
  void drive(Slot& slot, Clock::time_point now);
  void close_slot(Slot& slot);
  void stop_accepting();

  common::ServerContext& ctx_;
  int epoll_fd_;
  bool shared_listener_;
  bool accepting_ = true;
  std::uint64_t next_serial_ = 1;                         // for the next Slot
  std::unordered_map<int, std::unique_ptr<Slot>> slots_;  // open connections, by fd
  TimerHeap<TimerKey> timers_;                            // WAIT deadlines
};

}  // namespace dumb
