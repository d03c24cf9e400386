// netpoll.h: the seam between the runtime's network poller and gort::net
// (Go's runtime_pollOpen / pollReset / pollWait / pollSetDeadline /
// pollUnblock / pollClose, which internal/poll calls). Public only because
// gort::net is a separate library; applications use <gort/net.h>.
//
// A descriptor's life, as net drives it (runtime/src/netpoll.h has the state
// machine behind it):
//
//   pd = poll_open(fd)                 register fd once, edge-triggered
//   loop per operation:
//     poll_prepare(pd, mode)           closed? deadline passed? clear stale readiness
//     syscall; on EAGAIN:
//       poll_wait(pd, mode, why)       park until ready, deadline or evict
//   poll_set_deadline(pd, ns, modes)   any time, from any fiber
//   poll_evict(pd)                     close begins: wakes both waiters (kClosing)
//   poll_close(pd)                     no operation in flight: deregister, free pd
//   close(fd)
//
// At most one fiber waits per mode at a time (the caller serialises readers
// and writers); a second waiter is a fatal "double wait", as in Go.
#pragma once

#include <cstdint>

#include <gort/detail/wait_reason.h>

namespace gort::detail {

struct PollDesc;

enum class PollMode : uint8_t { kRead = 1, kWrite = 2, kBoth = 3 };

enum class PollStatus : uint8_t {
  kReady,       // try the syscall (again)
  kClosing,     // poll_evict was called: the descriptor is being closed
  kTimeout,     // the mode's deadline has passed
  kNotInFiber,  // called outside a fiber of the running runtime
};

// Registers fd (nonblocking) with the running runtime's poller, creating the
// poller on first use. Returns null on failure and sets *error: 0 when no
// runtime is running, else the errno (EPERM: epoll refuses the descriptor's
// type, a regular file say; EEXIST, EMFILE, ENOMEM, ENOSPC...).
PollDesc* poll_open(int fd, int* error);
// Deregisters and frees pd. Precondition: poll_evict(pd) was called and no
// fiber is inside poll_wait on it. Call before close(fd).
void poll_close(PollDesc* pd);
PollStatus poll_prepare(PollDesc* pd, PollMode mode);
// `why` is the wait reason the fiber dump shows with the descriptor
// (kIoRead, kIoWrite, kAccept, kConnect).
PollStatus poll_wait(PollDesc* pd, PollMode mode, WaitReason why);
// True once the poller has seen the peer shut its write side (EPOLLRDHUP),
// a hang-up or an error on pd: from then on a read never blocks. Sticky.
// Lets a reader that saw a short read skip the recv that would return
// EAGAIN without missing an EOF whose edge came before that read.
bool poll_read_closed(PollDesc* pd);
// deadline_ns: CLOCK_MONOTONIC; 0 = none; in the past = expired at once.
// Applies to waits in progress and to later ones (Go's SetDeadline).
void poll_set_deadline(PollDesc* pd, int64_t deadline_ns, PollMode mode);
void poll_evict(PollDesc* pd);
// Nonzero while a runtime runs, different for every gort::run in the
// process: a descriptor opened under one runtime is dead after it returns.
uint64_t poll_runtime_id();

}  // namespace gort::detail
