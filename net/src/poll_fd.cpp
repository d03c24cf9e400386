// poll_fd.cpp: gort::net::PollFd (poll_fd.h) over a borrowed NetFd, whose
// wait_ready and close_borrowed carry the design.

#include <gort/net/poll_fd.h>

#include "net_fd.h"

namespace gort::net {

using detail::deadline_ns;
using detail::NetFd;
using gort::detail::PollMode;

PollFd::PollFd() = default;
PollFd::PollFd(std::unique_ptr<NetFd> fd) : fd_(std::move(fd)) {}
PollFd::PollFd(PollFd&&) noexcept = default;
PollFd& PollFd::operator=(PollFd&& other) noexcept {
  if (this != &other) {
    if (fd_) (void)fd_->close_borrowed();
    fd_ = std::move(other.fd_);
  }
  return *this;
}
PollFd::~PollFd() = default;  // ~NetFd close_borrowed()s an open one

Result<PollFd> PollFd::open(int fd) {
  if (fd < 0) return Error(Errc::kSystem, EBADF).with_op("poll fd " + std::to_string(fd));
  auto nfd = NetFd::borrow(fd);
  if (!nfd) return nfd.error().with_op("poll fd " + std::to_string(fd));
  return PollFd(std::move(*nfd));
}

Result<void> PollFd::wait_readable() { return fd_ ? fd_->wait_ready(PollMode::kRead) : Errc::kClosed; }
Result<void> PollFd::wait_readable(const Context& ctx) {
  return fd_ ? fd_->wait_ready(ctx, PollMode::kRead) : Errc::kClosed;
}
Result<void> PollFd::wait_writable() { return fd_ ? fd_->wait_ready(PollMode::kWrite) : Errc::kClosed; }
Result<void> PollFd::wait_writable(const Context& ctx) {
  return fd_ ? fd_->wait_ready(ctx, PollMode::kWrite) : Errc::kClosed;
}

void PollFd::set_deadline(Deadline t) {
  if (fd_) fd_->set_deadline(deadline_ns(t), PollMode::kBoth);
}
void PollFd::set_read_deadline(Deadline t) {
  if (fd_) fd_->set_deadline(deadline_ns(t), PollMode::kRead);
}
void PollFd::set_write_deadline(Deadline t) {
  if (fd_) fd_->set_deadline(deadline_ns(t), PollMode::kWrite);
}

Result<void> PollFd::close() { return fd_ ? fd_->close_borrowed() : Errc::kClosed; }
bool PollFd::is_open() const { return fd_ && !fd_->closed(); }
int PollFd::fd() const { return fd_ ? fd_->fd() : -1; }

}  // namespace gort::net
