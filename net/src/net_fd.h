// net_fd.h: a nonblocking socket that parks fibers on the runtime's poller
// (Go's internal/poll.FD). Conn and Listener are thin layers over it.
//
// Every operation is
//     enter (take a reference; fails with kClosed once close began)
//     lock this direction (one reader and one writer at a time: the
//       descriptor has one wait slot per direction)
//     poll_prepare; loop { syscall; on EAGAIN poll_wait }
//     unlock; leave (drop the reference)
//
// Lifetime (Go's fdMutex, reduced to what fibers need): `refs_` counts the
// object's own reference plus one per operation in progress, and its top
// bit says close() began. close() sets the bit, evicts the poller's waiters
// (they return kClosed), and drops the object's reference; whoever drops
// the last reference deregisters the descriptor and closes the fd. So the
// fd number is never closed (and reused by the kernel) while a syscall on
// it may still be running in another fiber.
//
// Registration with the poller is lazy when no runtime runs at open() (a
// listener made before gort::run): the first operation registers it with
// the runtime it runs under (attach). Until then, and from plain threads,
// operations run their syscall and report kNotInFiber only if they would
// have to wait.
//
// Cancellation (the overloads taking a gort::Context): while the operation
// runs, a cancel hook on the context sets an already-expired deadline on
// the operation's direction, which wakes it with kTimeout (Go's dial
// interrupts a connect the same way); the operation then reports the
// context's error, and the deadline the user set (user_rd_/user_wd_) is put
// back before the direction lock is released, so no other operation sees
// the expired one. Calls without a Context take none of these steps.
#pragma once

#include <sys/socket.h>

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>

#include <gort/context.h>
#include <gort/detail/netpoll.h>
#include <gort/mutex.h>
#include <gort/net/result.h>
#include <gort/net/tcp.h>
#include <gort/time.h>

namespace gort::net::detail {

using gort::detail::PollMode;

// A Deadline as the poller takes it: 0 for none; a time before the clock's
// epoch has passed and stays "expired" (1), not "none".
inline int64_t deadline_ns(Deadline t) {
  if (t == kNoDeadline) return 0;
  int64_t ns = gort::detail::to_monotonic_ns(t);
  return ns > 0 ? ns : 1;
}

class NetFd {
 public:
  // Takes ownership of fd (nonblocking), registering it with the running
  // runtime's poller, or later (attach) if none runs. On failure fd is closed.
  static Result<std::unique_ptr<NetFd>> open(int fd);
  // Registers a descriptor the caller keeps owning (gort::net::PollFd): the
  // running runtime's poller watches it, nothing here ever closes it, and
  // only wait_ready and close_borrowed may be used on it.  Fails with
  // kNotInFiber when no runtime runs.
  static Result<std::unique_ptr<NetFd>> borrow(int fd);
  ~NetFd();

  Result<std::size_t> read(void* buf, std::size_t n);
  Result<std::size_t> read(const gort::Context& ctx, void* buf, std::size_t n);
  Result<std::size_t> write(const void* buf, std::size_t n);
  Result<std::size_t> write(const gort::Context& ctx, const void* buf, std::size_t n);
  // accept4: the new fd (nonblocking, close-on-exec) and its peer address.
  // EMFILE and friends are returned as they are (Listener backs off).
  Result<int> accept(sockaddr_storage* peer, socklen_t* len);
  Result<int> accept(const gort::Context& ctx, sockaddr_storage* peer, socklen_t* len);
  // Completes a nonblocking connect() that returned EINPROGRESS.
  Result<void> finish_connect();
  Result<void> finish_connect(const gort::Context& ctx);
  Result<void> shutdown(int how);
  // A borrowed descriptor: parks until it is readable (kRead) or writable
  // (kWrite) as poll(2) would say -- level, not edge: its owner may have
  // left data unread -- or the deadline passes, or close_borrowed runs.
  Result<void> wait_ready(PollMode mode);
  Result<void> wait_ready(const gort::Context& ctx, PollMode mode);
  // A borrowed descriptor: wakes the waiters (kClosed), waits until they
  // have left, and deregisters it, all before returning, so its owner may
  // close it (and the kernel reuse the number) right after.
  Result<void> close_borrowed();
  Result<void> close();
  bool closed() const { return (refs_.load(std::memory_order_acquire) & kClosedBit) != 0; }

  void set_deadline(int64_t deadline_ns, PollMode mode);  // 0: none
  int fd() const { return fd_; }

 private:
  explicit NetFd(int fd) : fd_(fd) {}
  // One operation: a reference, then the direction's lock.
  class Op;
  // Cancellation of one operation by a Context (see the top of this file).
  class Interrupt;
  bool enter();
  void leave();
  void destroy();
  gort::detail::PollDesc* pd() const { return pd_.load(std::memory_order_acquire); }
  // pd(), registering first if needed; null: not registered (no runtime, or
  // the kernel refused: attach_errno_ says which). Inline: every operation
  // calls it, and after the first it is one load.
  gort::detail::PollDesc* attach() {
    if (auto* p = pd()) return p;
    return attach_slow();
  }
  gort::detail::PollDesc* attach_slow();
  Error wait_error(gort::detail::PollStatus st) const;
  // Parks until the direction is ready; `why` is what the fiber dump shows
  // (with the descriptor) meanwhile.
  Result<void> wait(PollMode mode, gort::detail::WaitReason why);
  // The operations' bodies, run inside an Op (and maybe an Interrupt).
  Result<std::size_t> read_in(Op& op, void* buf, std::size_t n);
  Result<std::size_t> write_in(Op& op, const void* buf, std::size_t n);
  Result<int> accept_in(Op& op, sockaddr_storage* peer, socklen_t* len);
  Result<void> finish_connect_in(Op& op);
  Result<void> wait_ready_in(Op& op);

  static constexpr uint32_t kClosedBit = 1u << 31;

  const int fd_;
  // Null until registered (attach); written once, under attach_mu_.
  // release/acquire: runtime_id_ is written before pd_ is published.
  std::atomic<gort::detail::PollDesc*> pd_{nullptr};
  uint64_t runtime_id_ = 0;  // poll_runtime_id() when registered
  // Why the last attach_slow could not register (poll_open's *error: 0 for
  // no runtime, else an errno), for wait() to report. Relaxed: a
  // diagnosis written under attach_mu_ before the operation's syscall and
  // read by the same operation.
  std::atomic<int> attach_errno_{0};
  // One registration; and a borrowed fd's deregistration (close_borrowed)
  // against set_deadline's use of the descriptor.
  gort::Mutex attach_mu_;
  std::atomic<int64_t> user_rd_{0};  // the read deadline set_deadline last set (0: none)
  std::atomic<int64_t> user_wd_{0};  // the write deadline likewise
  std::atomic<uint32_t> refs_{1};    // the object's + operations'; kClosedBit once closing
  gort::Mutex read_mu_;              // one reader at a time (accept counts as reading)
  // The last read returned fewer bytes than asked: the socket's receive
  // queue was empty then, so the next read parks first instead of paying a
  // recv that returns EAGAIN (guarded by read_mu_; see NetFd::read).
  bool read_drained_ = false;
  gort::Mutex write_mu_;  // one writer at a time (connect counts as writing)
  bool owns_fd_ = true;   // false: borrow()ed, never closed here (fixed)
};

}  // namespace gort::net::detail
