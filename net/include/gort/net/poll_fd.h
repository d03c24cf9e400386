// poll_fd.h: waiting on a descriptor gort did not create -- the socket of a
// C library with a nonblocking API (hiredis, libpq, c-ares, libcurl's multi
// interface) -- from a fiber, on the runtime's poller (Tokio's AsyncFd).
//
//   redisAsyncContext* ac = redisAsyncConnect("127.0.0.1", 6379);
//   auto watch = gort::net::PollFd::open(ac->c.fd);        // in a fiber
//   for (;;) {
//     if (!watch->wait_readable()) break;                  // parks the fiber
//     redisAsyncHandleRead(ac);                            // the library reads
//   }
//   watch->close();                                        // before the library closes the fd
//
// Rules
//  * The caller (or its library) keeps owning the descriptor: PollFd never
//    reads, writes or closes it, and does not change its flags. It must be
//    nonblocking for the fiber-friendly pattern above (the library's calls
//    would block the worker otherwise).
//  * wait_readable / wait_writable report the level, as poll(2) does: they
//    return at once while the descriptor is readable (writable), so an
//    owner that stops reading before EAGAIN loses nothing. An error or a
//    hang-up counts as ready: the owner's next call reports it.
//  * One waiter per direction at a time (one reader and one writer), as for
//    Conn; a second one waits for the first to return.
//  * close() wakes the waiters (Errc::kClosed), waits until they have left
//    and deregisters the descriptor before it returns: call it (or destroy
//    the PollFd) before the owner closes the descriptor -- a descriptor
//    closed while registered is a bug the kernel may report on another
//    file that reuses its number.
//  * open() and the waits must run in a fiber of a running runtime (else
//    Errc::kNotInFiber); the PollFd must not outlive that gort::run.
//  * Deadlines and Contexts as in tcp.h: a passed deadline gives
//    Errc::kTimeout; a canceled context Errc::kCanceled.
#pragma once

#include <memory>

#include <gort/context.h>
#include <gort/net/result.h>
#include <gort/net/tcp.h>

namespace gort::net {

class PollFd {
 public:
  PollFd();
  PollFd(PollFd&&) noexcept;
  PollFd& operator=(PollFd&&) noexcept;
  ~PollFd();  // close()s if open

  // Starts watching fd (which stays the caller's).
  static Result<PollFd> open(int fd);

  Result<void> wait_readable();
  Result<void> wait_readable(const Context& ctx);
  Result<void> wait_writable();
  Result<void> wait_writable(const Context& ctx);
  void set_deadline(Deadline t);  // both directions
  void set_read_deadline(Deadline t);
  void set_write_deadline(Deadline t);

  // Stops watching; see the rules above. kClosed if already closed.
  Result<void> close();
  bool is_open() const;
  int fd() const;  // -1 once moved from

 private:
  explicit PollFd(std::unique_ptr<detail::NetFd> fd);
  std::unique_ptr<detail::NetFd> fd_;
};

}  // namespace gort::net
