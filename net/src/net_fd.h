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
#pragma once

#include <sys/socket.h>

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>

#include <gort/detail/netpoll.h>
#include <gort/mutex.h>
#include <gort/net/result.h>

namespace gort::net::detail {

using gort::detail::PollMode;

class NetFd {
 public:
  // Takes ownership of fd (nonblocking), registering it with the poller. On
  // failure fd is closed.
  static Result<std::unique_ptr<NetFd>> open(int fd);
  ~NetFd();

  Result<std::size_t> read(void* buf, std::size_t n);
  Result<std::size_t> write(const void* buf, std::size_t n);
  // accept4: the new fd (nonblocking, close-on-exec) and its peer address.
  // EMFILE and friends are returned as they are (Listener backs off).
  Result<int> accept(sockaddr_storage* peer, socklen_t* len);
  // Completes a nonblocking connect() that returned EINPROGRESS.
  Result<void> finish_connect();
  Result<void> shutdown(int how);
  Result<void> close();
  bool closed() const { return (refs_.load(std::memory_order_acquire) & kClosedBit) != 0; }

  void set_deadline(int64_t deadline_ns, PollMode mode);  // 0: none
  int fd() const { return fd_; }

 private:
  explicit NetFd(int fd) : fd_(fd) {}
  // One operation: a reference, then the direction's lock.
  class Op;
  bool enter();
  void leave();
  void destroy();
  Error wait_error(gort::detail::PollStatus st) const;
  Result<void> wait(PollMode mode);

  static constexpr uint32_t kClosedBit = 1u << 31;

  const int fd_;
  gort::detail::PollDesc* pd_ = nullptr;  // null once the runtime that made it is gone
  uint64_t runtime_id_ = 0;               // poll_runtime_id() when registered
  std::atomic<uint32_t> refs_{1};         // the object's + operations'; kClosedBit once closing
  gort::Mutex read_mu_;                   // one reader at a time (accept counts as reading)
  // The last read returned fewer bytes than asked: the socket's receive
  // queue was empty then, so the next read parks first instead of paying a
  // recv that returns EAGAIN (guarded by read_mu_; see NetFd::read).
  bool read_drained_ = false;
  gort::Mutex write_mu_;                  // one writer at a time (connect counts as writing)
};

}  // namespace gort::net::detail
