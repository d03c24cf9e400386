// tcp.cpp: Conn, Listener, listen_tcp, dial_tcp over NetFd (see tcp.h).
#include <gort/net/tcp.h>

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>

#include <gort/time.h>

#include "line_buffer.h"
#include "net_fd.h"

namespace gort::net {

using detail::deadline_ns;
using detail::NetFd;
using gort::detail::PollMode;

namespace {

constexpr std::size_t kLineReadChunk = 4096;
constexpr auto kFirstBackoff = std::chrono::milliseconds(5);
constexpr auto kMaxBackoff = std::chrono::seconds(1);

Result<Address> socket_address(int fd, bool peer) {
  sockaddr_storage ss{};
  socklen_t len = sizeof ss;
  int rc = peer ? getpeername(fd, reinterpret_cast<sockaddr*>(&ss), &len)
                : getsockname(fd, reinterpret_cast<sockaddr*>(&ss), &len);
  if (rc != 0) return Error::from_errno(errno);
  return Address::from_sockaddr(reinterpret_cast<sockaddr*>(&ss), len);
}

void set_int_option(int fd, int level, int name, int value) { setsockopt(fd, level, name, &value, sizeof value); }

// "tcp 127.0.0.1:8080", or "tcp" when the socket has no address to report.
std::string endpoint(int fd, bool peer) {
  auto a = socket_address(fd, peer);
  return a ? a->to_string() : std::string();
}

// Out of descriptors or kernel memory: wait for some to free up.
bool is_resource_shortage(const Error& e) {
  int n = e.sys_errno();
  // ENOSPC: the poller's epoll_ctl past fs.epoll.max_user_watches.
  return n == EMFILE || n == ENFILE || n == ENOBUFS || n == ENOMEM || n == ENOSPC;
}

}  // namespace

// ---- Conn ----

Conn::Conn() = default;
Conn::Conn(std::unique_ptr<NetFd> fd) : fd_(std::move(fd)) {}
Conn::Conn(Conn&&) noexcept = default;
Conn& Conn::operator=(Conn&& other) noexcept {
  if (this != &other) {
    if (fd_) (void)fd_->close();
    fd_ = std::move(other.fd_);
    lines_ = std::move(other.lines_);
  }
  return *this;
}
Conn::~Conn() = default;  // ~NetFd closes

bool Conn::is_open() const { return fd_ && !fd_->closed(); }
int Conn::native_handle() const { return is_open() ? fd_->fd() : -1; }

Error Conn::op_error(const Error& e, const char* op) const {
  // Go's net.OpError: "read tcp 127.0.0.1:8080->127.0.0.1:40312: ...".
  std::string where = std::string(op) + " tcp";
  if (is_open()) {
    std::string local = endpoint(fd_->fd(), false), remote = endpoint(fd_->fd(), true);
    if (!local.empty()) where += " " + local + (remote.empty() ? "" : "->" + remote);
  }
  return e.with_op(std::move(where));
}

Result<std::size_t> Conn::read(void* buf, std::size_t n) {
  if (!fd_) return Errc::kClosed;
  if (lines_ && lines_->size() > 0 && n > 0) {
    if (fd_->closed()) return Errc::kClosed;
    return lines_->take(buf, n);
  }
  auto r = fd_->read(buf, n);
  if (!r && r.error() != Errc::kEof) return op_error(r.error(), "read");
  return r;
}

Result<std::size_t> Conn::read(const Context& ctx, void* buf, std::size_t n) {
  if (!fd_) return Errc::kClosed;
  if (lines_ && lines_->size() > 0 && n > 0) {
    if (fd_->closed()) return Errc::kClosed;
    return lines_->take(buf, n);
  }
  auto r = fd_->read(ctx, buf, n);
  if (!r && r.error() != Errc::kEof) return op_error(r.error(), "read");
  return r;
}

Result<std::size_t> Conn::write(const void* buf, std::size_t n) {
  if (!fd_) return Errc::kClosed;
  auto r = fd_->write(buf, n);
  if (!r) return op_error(r.error(), "write");
  return r;
}

Result<std::size_t> Conn::write(const Context& ctx, const void* buf, std::size_t n) {
  if (!fd_) return Errc::kClosed;
  auto r = fd_->write(ctx, buf, n);
  if (!r) return op_error(r.error(), "write");
  return r;
}

Result<void> Conn::write_all(const void* buf, std::size_t n) {
  const char* p = static_cast<const char*>(buf);
  while (n > 0) {
    auto put = write(p, n);
    if (!put) return put.error();
    p += *put;
    n -= *put;
  }
  return {};
}

Result<void> Conn::write_all(const Context& ctx, const void* buf, std::size_t n) {
  const char* p = static_cast<const char*>(buf);
  while (n > 0) {
    auto put = write(ctx, p, n);
    if (!put) return put.error();
    p += *put;
    n -= *put;
  }
  return {};
}

template <class ReadChunk>
Result<std::string> Conn::read_line_with(std::size_t max_len, ReadChunk read_chunk) {
  if (!fd_) return Errc::kClosed;
  if (!lines_) lines_ = std::make_unique<detail::LineBuffer>();
  std::string line;
  for (;;) {
    switch (lines_->scan(max_len, &line)) {
      case detail::LineBuffer::Scan::kLine: return line;
      case detail::LineBuffer::Scan::kTooLong: return Error(Errc::kLineTooLong, 0, "no line end within max_len bytes");
      case detail::LineBuffer::Scan::kNeedMore: break;
    }
    // Read what fits, but not far past what a line of max_len may need.
    std::size_t want = std::min(kLineReadChunk, max_len + 2);
    char* area = lines_->write_area(want);
    Result<std::size_t> got = read_chunk(area, lines_->write_room());
    if (!got) {
      if (got.error() == Errc::kEof && lines_->size() > 0) return lines_->take_all();
      if (got.error() == Errc::kEof) return got.error();
      return op_error(got.error(), "read");
    }
    lines_->commit(*got);
  }
}

Result<std::string> Conn::read_line(std::size_t max_len) {
  return read_line_with(max_len, [this](char* area, std::size_t room) { return fd_->read(area, room); });
}

Result<std::string> Conn::read_line(const Context& ctx, std::size_t max_len) {
  return read_line_with(max_len, [this, &ctx](char* area, std::size_t room) { return fd_->read(ctx, area, room); });
}

Result<void> Conn::shutdown(Shutdown how) {
  if (!fd_) return Errc::kClosed;
  int h = how == Shutdown::kRead ? SHUT_RD : how == Shutdown::kWrite ? SHUT_WR : SHUT_RDWR;
  return fd_->shutdown(h);
}

Result<void> Conn::close() {
  if (!fd_) return Errc::kClosed;
  return fd_->close();
}

void Conn::set_deadline(Deadline t) {
  if (fd_) fd_->set_deadline(deadline_ns(t), PollMode::kBoth);  // a closed NetFd ignores it
}

void Conn::set_read_deadline(Deadline t) {
  if (fd_) fd_->set_deadline(deadline_ns(t), PollMode::kRead);
}

void Conn::set_write_deadline(Deadline t) {
  if (fd_) fd_->set_deadline(deadline_ns(t), PollMode::kWrite);
}

Result<Address> Conn::local_address() const {
  if (!is_open()) return Errc::kClosed;
  return socket_address(fd_->fd(), false);
}

Result<Address> Conn::remote_address() const {
  if (!is_open()) return Errc::kClosed;
  return socket_address(fd_->fd(), true);
}

Result<void> Conn::set_no_delay(bool on) {
  if (!is_open()) return Errc::kClosed;
  int v = on ? 1 : 0;
  if (setsockopt(fd_->fd(), IPPROTO_TCP, TCP_NODELAY, &v, sizeof v) != 0) return Error::from_errno(errno);
  return {};
}

// ---- Listener ----

Listener::Listener() = default;
Listener::Listener(std::unique_ptr<NetFd> fd) : fd_(std::move(fd)) {}
Listener::Listener(Listener&&) noexcept = default;
Listener& Listener::operator=(Listener&& other) noexcept {
  if (this != &other) {
    if (fd_) (void)fd_->close();
    fd_ = std::move(other.fd_);
    backoffs_ = other.backoffs_;
  }
  return *this;
}
Listener::~Listener() = default;

bool Listener::is_open() const { return fd_ && !fd_->closed(); }
int Listener::native_handle() const { return is_open() ? fd_->fd() : -1; }
uint64_t Listener::accept_backoffs() const { return backoffs_; }

Error Listener::op_error(const Error& e) const {
  std::string where = "accept tcp";
  if (is_open()) {
    std::string local = endpoint(fd_->fd(), false);
    if (!local.empty()) where += " " + local;
  }
  return e.with_op(std::move(where));
}

Result<Conn> Listener::accept() { return accept_with(nullptr); }
Result<Conn> Listener::accept(const Context& ctx) { return accept_with(&ctx); }

Result<Conn> Listener::accept_with(const Context* ctx) {
  if (!fd_) return op_error(Errc::kClosed);
  auto backoff = std::chrono::duration_cast<std::chrono::nanoseconds>(kFirstBackoff);
  for (;;) {
    sockaddr_storage peer;
    socklen_t len;
    auto c = ctx ? fd_->accept(*ctx, &peer, &len) : fd_->accept(&peer, &len);
    if (c) {
      set_int_option(*c, IPPROTO_TCP, TCP_NODELAY, 1);
      auto nfd = NetFd::open(*c);
      if (!nfd) {
        if (is_resource_shortage(nfd.error())) continue;  // the epoll table is full: drop this one
        return op_error(nfd.error());
      }
      return Conn(std::move(*nfd));
    }
    if (!is_resource_shortage(c.error())) return op_error(c.error());
    // Out of descriptors: the pending connection stays queued in the kernel.
    // Retrying at once would spin; sleep, doubling, and try again.
    ++backoffs_;
    if (ctx) {
      if (gort::sleep_for(*ctx, backoff) != ContextError::kNone)
        return op_error(ctx->err() == ContextError::kCanceled ? Errc::kCanceled : Errc::kTimeout);
    } else {
      gort::sleep_for(backoff);
    }
    backoff = std::min<std::chrono::nanoseconds>(2 * backoff, kMaxBackoff);
  }
}

Result<void> Listener::close() {
  if (!fd_) return Errc::kClosed;
  return fd_->close();
}

void Listener::set_deadline(Deadline t) {
  if (fd_) fd_->set_deadline(deadline_ns(t), PollMode::kRead);
}

Result<Address> Listener::local_address() const {
  if (!is_open()) return Errc::kClosed;
  return socket_address(fd_->fd(), false);
}

namespace {

Result<Listener> listen_one(std::string_view address, const ListenOptions& options) {
  auto addrs = resolve_tcp(address, ResolveFor::kListen);
  if (!addrs) return addrs.error();
  const Address& a = addrs->front();
  int fd = ::socket(a.family(), SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) return Error::from_errno(errno);
  set_int_option(fd, SOL_SOCKET, SO_REUSEADDR, 1);
  if (options.reuse_port) set_int_option(fd, SOL_SOCKET, SO_REUSEPORT, 1);
  if (::bind(fd, a.sockaddr_ptr(), a.length()) != 0 || ::listen(fd, options.backlog) != 0) {
    int err = errno;
    ::close(fd);
    Error e = Error::from_errno(err);
    if (e == Errc::kAddressInUse)
      return Error(Errc::kAddressInUse, err, "another socket is bound to this address and port");
    return e;
  }
  auto nfd = NetFd::open(fd);
  if (!nfd) return nfd.error();
  return Listener(std::move(*nfd));
}

}  // namespace

Result<Listener> listen_tcp(std::string_view address, const ListenOptions& options) {
  auto l = listen_one(address, options);
  if (!l) return l.error().with_op("listen tcp " + std::string(address));
  return l;
}

Result<std::vector<Listener>> listen_tcp_group(std::string_view address, int n, const ListenOptions& options) {
  auto op = [&] { return "listen tcp " + std::string(address); };
  if (n < 1) return Error(Errc::kSystem, EINVAL, "a listener group needs at least one listener").with_op(op());
  ListenOptions shared = options;
  shared.reuse_port = true;
  std::vector<Listener> group;
  group.reserve(std::size_t(n));
  auto first = listen_one(address, shared);
  if (!first) return first.error().with_op(op());
  auto bound = first->local_address();  // the port port 0 picked
  if (!bound) return bound.error().with_op(op());
  group.push_back(std::move(*first));
  for (int i = 1; i < n; ++i) {
    auto next = listen_one(bound->to_string(), shared);
    if (!next) return next.error().with_op(op());
    group.push_back(std::move(*next));
  }
  return group;
}

namespace {

Result<Conn> dial_one(const Context* ctx, const Address& a, int64_t deadline) {
  int fd = ::socket(a.family(), SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) return Error::from_errno(errno);
  set_int_option(fd, IPPROTO_TCP, TCP_NODELAY, 1);
  int rc;
  do {
    rc = ::connect(fd, a.sockaddr_ptr(), a.length());
  } while (rc != 0 && errno == EINTR);
  int err = rc == 0 ? 0 : errno;
  if (err != 0 && err != EINPROGRESS) {
    ::close(fd);
    return Error::from_errno(err);
  }
  // Registered after connect(), as Go does: registering reports the current
  // state, so a connect that already completed is not missed.
  auto nfd = NetFd::open(fd);
  if (!nfd) return nfd.error();
  if (err == EINPROGRESS) {
    if (deadline != 0) (*nfd)->set_deadline(deadline, PollMode::kWrite);
    auto done = ctx ? (*nfd)->finish_connect(*ctx) : (*nfd)->finish_connect();
    if (!done) return done.error();  // ~NetFd closes fd
    if (deadline != 0) (*nfd)->set_deadline(0, PollMode::kWrite);
  }
  return Conn(std::move(*nfd));
}

Result<Conn> dial(const Context* ctx, std::string_view address, std::chrono::nanoseconds timeout) {
  int64_t deadline = timeout.count() > 0 ? deadline_ns(Clock::now() + timeout) : 0;
  if (ctx) {
    if (auto d = ctx->deadline(); d && (deadline == 0 || deadline_ns(*d) < deadline)) deadline = deadline_ns(*d);
    if (ctx->err() != ContextError::kNone)
      return ctx->err() == ContextError::kCanceled ? Errc::kCanceled : Errc::kTimeout;
  }
  auto addrs = resolve_tcp(address, ResolveFor::kDial);
  if (!addrs) return addrs.error();
  Error first = Error(Errc::kRefused);
  for (std::size_t i = 0; i < addrs->size(); ++i) {
    auto c = dial_one(ctx, (*addrs)[i], deadline);
    if (c) return c;
    if (i == 0) first = c.error();
    Errc code = c.error().code();
    if (code == Errc::kTimeout || code == Errc::kNotInFiber || code == Errc::kCanceled) return c.error();
  }
  return first;  // Go reports the first address's error too
}

}  // namespace

Result<Conn> dial_tcp(std::string_view address, std::chrono::nanoseconds timeout) {
  auto c = dial(nullptr, address, timeout);
  if (!c) return c.error().with_op("dial tcp " + std::string(address));
  return c;
}

Result<Conn> dial_tcp(const Context& ctx, std::string_view address, std::chrono::nanoseconds timeout) {
  auto c = dial(&ctx, address, timeout);
  if (!c) return c.error().with_op("dial tcp " + std::string(address));
  return c;
}

}  // namespace gort::net
