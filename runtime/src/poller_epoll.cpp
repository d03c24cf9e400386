// poller_epoll.cpp: the epoll backend of poller.h (Go's netpoll_epoll.go).
//
// Every fd is added once with EPOLLIN|EPOLLOUT|EPOLLRDHUP|EPOLLET: edge
// triggering reports each new readiness once, so nothing has to be re-armed
// per operation, and a fiber that gets EAGAIN is guaranteed a later event
// (the kernel raises one for every new arrival of data or room).
//
// interrupt() writes an eventfd registered level-triggered: it stays
// readable until a wait() drains it, so an interrupt that lands before the
// waiter enters epoll_wait still makes that epoll_wait return at once.
// interrupt_pending_ coalesces writers: one write per drained interrupt.
// Only a blocking wait (deadline_ns != 0: the worker sleeping in the
// poller, whom interrupts are for) drains it, as in Go's netpoll. Busy
// workers and the monitor poll without blocking at any moment; had one of
// them drained it, the sleeper, woken by the kernel, would find nothing
// ready and sleep on, with the wake-up meant for it lost. A nonblocking
// wait just skips the event, which stays pending for the sleeper.
//
// Rejected: EPOLLONESHOT (an epoll_ctl per operation to re-arm); level
// triggering (an idle readable fd would be reported on every wait).
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <cerrno>

#include "platform.h"
#include "poller.h"

namespace gort::detail {

namespace {
// The token of the eventfd: never a PollDesc (those are 8-aligned and nonzero).
constexpr uint64_t kWakeToken = 1;
constexpr int kEventsPerWait = 128;
}  // namespace

PollerBackend::~PollerBackend() {
  if (wake_fd_ >= 0) ::close(wake_fd_);
  if (kernel_fd_ >= 0) ::close(kernel_fd_);
}

bool PollerBackend::init(int* error) {
  kernel_fd_ = epoll_create1(EPOLL_CLOEXEC);
  if (kernel_fd_ < 0) {
    *error = errno;
    return false;
  }
  wake_fd_ = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  if (wake_fd_ < 0) {
    *error = errno;
    return false;
  }
  epoll_event ev{};
  ev.events = EPOLLIN;  // level-triggered: see the top of the file
  ev.data.u64 = kWakeToken;
  if (epoll_ctl(kernel_fd_, EPOLL_CTL_ADD, wake_fd_, &ev) != 0) {
    *error = errno;
    return false;
  }
  return true;
}

int PollerBackend::open(int fd, uint64_t token) {
  epoll_event ev{};
  ev.events = EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET;
  ev.data.u64 = token;
  return epoll_ctl(kernel_fd_, EPOLL_CTL_ADD, fd, &ev) == 0 ? 0 : errno;
}

int PollerBackend::close(int fd) {
  epoll_event ev{};  // ignored by DEL, but kernels before 2.6.9 wanted it
  return epoll_ctl(kernel_fd_, EPOLL_CTL_DEL, fd, &ev) == 0 ? 0 : errno;
}

int PollerBackend::wait(int64_t deadline_ns, PollEvent* events, int max) {
  int timeout_ms = -1;
  if (deadline_ns == 0) {
    timeout_ms = 0;
  } else if (deadline_ns != kNever) {
    int64_t left = deadline_ns - now_ns();
    if (left <= 0) {
      timeout_ms = 0;
    } else {
      // Round up: waking before the deadline would only poll again. Cap at
      // a day so the int cannot overflow; the caller loops anyway.
      int64_t ms = (left + 999'999) / 1'000'000;
      timeout_ms = int(ms > 86'400'000 ? 86'400'000 : ms);
    }
  }
  epoll_event raw[kEventsPerWait];
  int n = epoll_wait(kernel_fd_, raw, max < kEventsPerWait ? max : kEventsPerWait, timeout_ms);
  if (n < 0) return 0;  // EINTR: the caller re-checks its conditions and loops
  int out = 0;
  for (int i = 0; i < n; ++i) {
    if (raw[i].data.u64 == kWakeToken) {
      if (deadline_ns == 0) continue;  // not ours to take: see the top of the file
      uint64_t count;
      while (::read(wake_fd_, &count, sizeof count) > 0) {
      }
      // release: pairs with the acquire exchange in interrupt(); a later
      // interrupt() writes the eventfd again.
      interrupt_pending_.store(false, std::memory_order_release);
      continue;
    }
    uint32_t e = raw[i].events;
    // An error or hang-up wakes both sides: the next syscall reports it.
    bool problem = (e & (EPOLLERR | EPOLLHUP)) != 0;
    events[out].token = raw[i].data.u64;
    events[out].readable = problem || (e & (EPOLLIN | EPOLLRDHUP | EPOLLPRI)) != 0;
    events[out].writable = problem || (e & EPOLLOUT) != 0;
    events[out].read_closed = problem || (e & EPOLLRDHUP) != 0;
    ++out;
  }
  return out;
}

void PollerBackend::interrupt() {
  // acq_rel: only the caller that flips false -> true writes; the flag is
  // reset by wait() after draining (release there).
  if (interrupt_pending_.exchange(true, std::memory_order_acq_rel)) return;
  uint64_t one = 1;
  while (::write(wake_fd_, &one, sizeof one) < 0 && errno == EINTR) {
  }
}

}  // namespace gort::detail
