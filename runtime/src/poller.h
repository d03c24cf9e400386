// poller.h: the contract between the generic network poller (netpoll.cpp)
// and the kernel mechanism that reports fd readiness (Go's netpoll_*.go).
//
// A backend implements the class below in its own file; exactly one is
// compiled in (poller_epoll.cpp today; an io_uring backend would be
// poller_uring.cpp and a CMake switch). It must provide:
//
//   bool init(int* error)
//       Create the kernel objects. Called once per runtime, lazily, by the
//       first poll_open. false (and an errno value) on failure.
//   int open(int fd, uint64_t token)
//       Arm edge-triggered notifications for fd, for reading, writing and
//       peer hang-up, once for the fd's whole life: no call per operation.
//       `token` comes back with every event for fd. Returns an errno value.
//   int close(int fd)
//       Disarm fd (before it is closed). Returns an errno value.
//   int wait(int64_t deadline_ns, PollEvent* events, int max)
//       Collect readiness events. deadline_ns: 0 = do not block, kNever =
//       block until an event or interrupt(), else an absolute
//       CLOCK_MONOTONIC deadline. Returns how many events were stored (0 on
//       timeout, interrupt or EINTR). Any number of threads may call it at
//       once; each event is delivered to one of them.
//   void interrupt()
//       Make a blocking wait() in progress on another thread return, or
//       the next one if none is in progress (the request is sticky until a
//       blocking wait consumes it, like a futex value, so an interrupt
//       racing with the start of a wait is not lost, and a nonblocking
//       wait on a third thread never takes it). Callable from any thread;
//       repeated calls may coalesce.
//   ~PollerBackend()
//       Release the kernel objects. No thread is inside wait() by then.
//
// The backend knows nothing of fibers, descriptors' states or deadlines:
// netpoll.cpp turns events into ready fibers.
#pragma once

#include <atomic>
#include <cstdint>

namespace gort::detail {

struct PollEvent {
  uint64_t token;    // as passed to open()
  bool readable;     // data, EOF, or an error a read would report
  bool writable;     // room, or an error a write would report
  bool read_closed;  // the peer shut its write side, or an error/hang-up: reads never block again
};

class PollerBackend {
 public:
  PollerBackend() = default;
  PollerBackend(const PollerBackend&) = delete;
  PollerBackend& operator=(const PollerBackend&) = delete;
  ~PollerBackend();

  bool init(int* error);
  int open(int fd, uint64_t token);
  int close(int fd);
  int wait(int64_t deadline_ns, PollEvent* events, int max);
  void interrupt();

 private:
  int kernel_fd_ = -1;                          // the epoll instance (or io_uring fd)
  int wake_fd_ = -1;                            // eventfd that interrupt() writes
  std::atomic<bool> interrupt_pending_{false};  // coalesces interrupt() (Go's netpollWakeSig)
};

}  // namespace gort::detail
