// net_fd.cpp: see net_fd.h.
#include "net_fd.h"

#include <poll.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <mutex>

#include <gort/detail/preempt.h>

namespace gort::net::detail {

using gort::detail::PollStatus;
using gort::detail::WaitReason;

namespace {

// recv and send as bare system calls, as Go's runtime makes them. glibc's
// recv and send are pthread cancellation points: each brackets its system
// call with two compare-and-swaps on the thread's cancellation word, a
// cost paid on every request of a server (docs/BENCHMARKS.md has the
// count). Nothing here wants to be a cancellation point: a worker
// thread is never cancelled, and a plain thread calling in gets
// nonblocking calls that never wait in the kernel anyway. Sanitizer builds
// keep the libc calls: ASan checks the buffer in its interceptor, and
// TSan's interceptors order a send before the recv that sees its bytes
// (without them a fiber and a plain thread talking over a socket would
// look like a race).
// GORT_SANITIZER_BUILD is the build's one switch for sanitizer-specific code
// (CMakeLists.txt; fiber.h's context annotations use it too).
#if GORT_SANITIZER_BUILD
ssize_t sys_recv(int fd, void* buf, std::size_t n) { return ::recv(fd, buf, n, 0); }
ssize_t sys_send(int fd, const void* buf, std::size_t n) { return ::send(fd, buf, n, MSG_NOSIGNAL); }
#else
ssize_t sys_recv(int fd, void* buf, std::size_t n) { return ::syscall(SYS_recvfrom, fd, buf, n, 0, nullptr, nullptr); }
ssize_t sys_send(int fd, const void* buf, std::size_t n) {
  return ::syscall(SYS_sendto, fd, buf, n, MSG_NOSIGNAL, nullptr, 0);
}
#endif

}  // namespace

Result<std::unique_ptr<NetFd>> NetFd::open(int fd) {
  std::unique_ptr<NetFd> nfd(new NetFd(fd));
  int err = 0;
  gort::detail::PollDesc* pd = gort::detail::poll_open(fd, &err);
  if (pd == nullptr && err != 0) {  // 0: no runtime yet; attach registers later
    ::close(fd);
    nfd.release();  // nothing else to undo; avoid ~NetFd's close
    return Error::from_errno(err);
  }
  if (pd != nullptr) {
    nfd->runtime_id_ = gort::detail::poll_runtime_id();
    nfd->pd_.store(pd, std::memory_order_release);
  }
  return nfd;
}

Result<std::unique_ptr<NetFd>> NetFd::borrow(int fd) {
  int err = 0;
  gort::detail::PollDesc* pd = gort::detail::poll_open(fd, &err);
  if (pd == nullptr) return err == 0 ? Error(Errc::kNotInFiber) : Error::from_errno(err);
  std::unique_ptr<NetFd> nfd(new NetFd(fd));
  nfd->owns_fd_ = false;
  nfd->runtime_id_ = gort::detail::poll_runtime_id();
  nfd->pd_.store(pd, std::memory_order_release);
  return nfd;
}

gort::detail::PollDesc* NetFd::attach_slow() {
  std::lock_guard<gort::Mutex> guard(attach_mu_);
  if (auto* p = pd()) return p;
  // A borrowed descriptor is only ever registered by borrow(); once
  // close_borrowed has deregistered it, its owner may close it at any time.
  if (!owns_fd_) return nullptr;
  int err = 0;
  gort::detail::PollDesc* p = gort::detail::poll_open(fd_, &err);
  if (p == nullptr) {  // no runtime, or out of descriptors or memory: nothing waits
    attach_errno_.store(err, std::memory_order_relaxed);
    return nullptr;
  }
  runtime_id_ = gort::detail::poll_runtime_id();
  // Deadlines set before registration apply from now on.
  if (int64_t rd = user_rd_.load(std::memory_order_relaxed); rd != 0)
    gort::detail::poll_set_deadline(p, rd, PollMode::kRead);
  if (int64_t wd = user_wd_.load(std::memory_order_relaxed); wd != 0)
    gort::detail::poll_set_deadline(p, wd, PollMode::kWrite);
  pd_.store(p, std::memory_order_release);  // pairs with pd()'s acquire
  return p;
}

NetFd::~NetFd() {
  if (!closed()) (void)(owns_fd_ ? close() : close_borrowed());
}

bool NetFd::enter() {
  // Never touch the count once closing: an increment-then-leave() here could
  // take a count that already reached 0 (destroyed) back to 1 and run
  // destroy() a second time -- a second close() of an fd number the kernel
  // may have reused.  acquire: pairs with close()'s fetch_or.
  uint32_t old = refs_.load(std::memory_order_acquire);
  do {
    if (old & kClosedBit) return false;
  } while (!refs_.compare_exchange_weak(old, old + 1, std::memory_order_acquire, std::memory_order_acquire));
  return true;
}

void NetFd::leave() {
  // acq_rel: the last leaver's teardown must see every operation's effects.
  if (refs_.fetch_sub(1, std::memory_order_acq_rel) == (kClosedBit | 1)) destroy();
}

void NetFd::destroy() {
  // The runtime that registered the fd may be gone (the object outlived
  // gort::run); its poller died with it, and with it the registration.
  if (auto* p = pd(); p != nullptr && gort::detail::poll_runtime_id() == runtime_id_) gort::detail::poll_close(p);
  pd_.store(nullptr, std::memory_order_relaxed);
  if (owns_fd_) ::close(fd_);
}

Result<void> NetFd::close() {
  uint32_t old = refs_.fetch_or(kClosedBit, std::memory_order_acq_rel);
  if (old & kClosedBit) return Errc::kClosed;
  if (auto* p = pd(); p != nullptr && gort::detail::poll_runtime_id() == runtime_id_) gort::detail::poll_evict(p);
  leave();  // the object's own reference
  return {};
}

Error NetFd::wait_error(PollStatus st) const {
  switch (st) {
    case PollStatus::kClosing: return Error(Errc::kClosed);
    case PollStatus::kTimeout: return Error(Errc::kTimeout);
    case PollStatus::kNotInFiber: return Error(Errc::kNotInFiber);
    case PollStatus::kReady: break;
  }
  return Error(Errc::kSystem);
}

Result<void> NetFd::wait(PollMode mode, gort::detail::WaitReason why) {
  gort::detail::PollDesc* p = pd();
  if (p == nullptr) {  // never attached: no runtime to wait in, or it could not register us
    int err = attach_errno_.load(std::memory_order_relaxed);
    return err == 0 ? Error(Errc::kNotInFiber) : Error::from_errno(err);
  }
  PollStatus st = gort::detail::poll_wait(p, mode, why);
  if (st != PollStatus::kReady) return wait_error(st);
  return {};
}

// An operation in progress: holds a reference and the direction's lock.
class NetFd::Op {
 public:
  Op(NetFd* fd, PollMode mode) : fd_(fd), mode_(mode) {
    if (!fd_->enter()) return;
    entered_ = true;
    mutex().lock();
    pd_ = fd_->attach();
  }
  ~Op() {
    if (!entered_) return;
    mutex().unlock();
    fd_->leave();
  }
  bool entered() const { return entered_; }
  gort::detail::PollDesc* pd() const { return pd_; }
  PollMode mode() const { return mode_; }
  // kReady, or what stops the operation before its syscall (kClosing when
  // the descriptor was closed: wait_error makes it kClosed). A status, not
  // a Result: this runs on every operation, and the Error is built only
  // when there is one.
  PollStatus start() {
    if (!entered_) return PollStatus::kClosing;
    if (pd_ == nullptr) return PollStatus::kReady;  // not attached: the syscall runs, wait() refuses
    return gort::detail::poll_prepare(pd_, mode_);
  }

 private:
  gort::Mutex& mutex() { return mode_ == PollMode::kRead ? fd_->read_mu_ : fd_->write_mu_; }
  NetFd* fd_;
  PollMode mode_;
  bool entered_ = false;
  gort::detail::PollDesc* pd_ = nullptr;  // attached descriptor, or null
};

// Cancels one operation (inside its Op) when ctx is canceled; see net_fd.h.
// Construct after the Op has its direction lock, destroy before it drops
// it (hence a plain scope inside each ctx overload).
class NetFd::Interrupt {
 public:
  Interrupt(NetFd* fd, Op& op, const gort::Context& ctx) : fd_(fd), op_(op), ctx_(ctx) {
    hook_.run = [](void* arg) { static_cast<Interrupt*>(arg)->expire(); };
    hook_.arg = this;
    done_before_ = !gort::detail::add_cancel_hook(ctx, &hook_);
  }
  ~Interrupt() {
    bool ran = !gort::detail::remove_cancel_hook(&hook_);
    if (ran && op_.pd() != nullptr) {
      const auto& user = op_.mode() == PollMode::kRead ? fd_->user_rd_ : fd_->user_wd_;
      gort::detail::poll_set_deadline(op_.pd(), user.load(std::memory_order_relaxed), op_.mode());
    }
  }
  // The context was done before the operation started: do not start it.
  bool done_before() const { return done_before_; }
  // What the operation reports: its own result, except that the timeout
  // our expired deadline caused (or a user deadline that passed while the
  // context ended) reports the context's error.
  template <class T>
  Result<T> outcome(Result<T> r) const {
    if (r.ok() || r.error() != Errc::kTimeout) return r;
    return context_error<T>(r);
  }
  // The operation is not started: the context was already done.
  template <class T>
  Result<T> refused() const {
    return context_error<T>(Result<T>(Errc::kCanceled));
  }

 private:
  template <class T>
  Result<T> context_error(Result<T> otherwise) const {
    switch (ctx_.err()) {
      case gort::ContextError::kNone: return otherwise;
      case gort::ContextError::kCanceled: return Errc::kCanceled;
      case gort::ContextError::kDeadlineExceeded: return Errc::kTimeout;
    }
    return otherwise;
  }
  void expire() {
    // 1 ns after the clock's epoch: long past, and not 0 (which means none).
    if (op_.pd() != nullptr) gort::detail::poll_set_deadline(op_.pd(), 1, op_.mode());
  }
  NetFd* fd_;
  Op& op_;
  const gort::Context& ctx_;
  gort::detail::CancelHook hook_;
  bool done_before_ = false;
};

// A short read (fewer bytes than asked) means the receive queue was empty
// when recv returned, so the next read waits for readiness before its recv
// instead of after an EAGAIN: one syscall fewer per request-reply exchange
// (nginx does the same with EPOLLRDHUP). No wake-up is lost: the fd is
// registered edge-triggered, so bytes or a FIN arriving after that recv
// raise a new edge, and this path does not drop the notification
// (poll_prepare would). A notification from before the recv only costs a
// spurious recv that returns EAGAIN. A FIN (or reset) that came before the
// short recv raised its edge then, and poll_prepare may have dropped it, so
// once the poller has seen one (poll_read_closed, sticky) reads go straight
// to recv, as they would without the hint (nginx's pending_eof).
// Before that wait, if other fibers are queued on this worker, the reader
// yields to them and then tries recv first, as after any other read: under
// load the peer's next message has usually arrived by the time they ran, and
// the read then costs no park, no poller event and no wake-up (Photon's echo
// yields after every message). With nothing queued there is nothing to wait
// behind, and it parks at once.
Result<std::size_t> NetFd::read(void* buf, std::size_t n) {
  Op op(this, PollMode::kRead);
  return read_in(op, buf, n);
}

Result<std::size_t> NetFd::read(const gort::Context& ctx, void* buf, std::size_t n) {
  Op op(this, PollMode::kRead);
  Interrupt interrupt(this, op, ctx);
  if (interrupt.done_before()) return interrupt.refused<std::size_t>();
  return interrupt.outcome(read_in(op, buf, n));
}

// Inline into both read()s: the body is the operation, the split only
// shares it between the overloads.
__attribute__((always_inline)) inline Result<std::size_t> NetFd::read_in(Op& op, void* buf, std::size_t n) {
  if (!op.entered()) return Errc::kClosed;
  if (read_drained_ && n > 0 && op.pd() != nullptr && !gort::detail::poll_read_closed(op.pd()) &&
      !gort::detail::yield_if_others_queued()) {
    if (auto r = wait(PollMode::kRead, WaitReason::kIoRead); !r) return r.error();
  } else if (PollStatus st = op.start(); st != PollStatus::kReady) {
    return wait_error(st);
  }
  if (n == 0) return std::size_t(0);
  for (;;) {
    ssize_t got = sys_recv(fd_, buf, n);
    if (got > 0) {
      read_drained_ = std::size_t(got) < n;
      // A reader that always finds data never parks: this is where its
      // time slice ends (runtime/src/monitor.h). The direction's lock is
      // held across the yield, as Go holds its fdMutex when preempted.
      gort::detail::preemption_point();
      return std::size_t(got);
    }
    read_drained_ = false;
    if (got == 0) return Errc::kEof;
    if (errno == EINTR) continue;
    if (errno != EAGAIN) return Error::from_errno(errno);
    if (auto r = wait(PollMode::kRead, WaitReason::kIoRead); !r) return r.error();
  }
}

Result<std::size_t> NetFd::write(const void* buf, std::size_t n) {
  Op op(this, PollMode::kWrite);
  return write_in(op, buf, n);
}

Result<std::size_t> NetFd::write(const gort::Context& ctx, const void* buf, std::size_t n) {
  Op op(this, PollMode::kWrite);
  Interrupt interrupt(this, op, ctx);
  if (interrupt.done_before()) return interrupt.refused<std::size_t>();
  return interrupt.outcome(write_in(op, buf, n));
}

__attribute__((always_inline)) inline Result<std::size_t> NetFd::write_in(Op& op, const void* buf, std::size_t n) {
  if (PollStatus st = op.start(); st != PollStatus::kReady) return wait_error(st);
  if (n == 0) return std::size_t(0);
  for (;;) {
    // MSG_NOSIGNAL: a write to a reset connection is EPIPE, not SIGPIPE.
    ssize_t put = sys_send(fd_, buf, n);
    if (put >= 0) {
      gort::detail::preemption_point();  // as in read
      return std::size_t(put);
    }
    if (errno == EINTR) continue;
    if (errno != EAGAIN) return Error::from_errno(errno);
    if (auto r = wait(PollMode::kWrite, WaitReason::kIoWrite); !r) return r.error();
  }
}

Result<int> NetFd::accept(sockaddr_storage* peer, socklen_t* len) {
  Op op(this, PollMode::kRead);
  return accept_in(op, peer, len);
}

Result<int> NetFd::accept(const gort::Context& ctx, sockaddr_storage* peer, socklen_t* len) {
  Op op(this, PollMode::kRead);
  Interrupt interrupt(this, op, ctx);
  if (interrupt.done_before()) return interrupt.refused<int>();
  return interrupt.outcome(accept_in(op, peer, len));
}

Result<int> NetFd::accept_in(Op& op, sockaddr_storage* peer, socklen_t* len) {
  if (PollStatus st = op.start(); st != PollStatus::kReady) return wait_error(st);
  for (;;) {
    *len = sizeof *peer;
    int c = ::accept4(fd_, reinterpret_cast<sockaddr*>(peer), len, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (c >= 0) {
      gort::detail::preemption_point();  // as in read: an acceptor under a connection storm
      return c;
    }
    // ECONNABORTED: a connection went away while queued; take the next.
    if (errno == EINTR || errno == ECONNABORTED) continue;
    if (errno != EAGAIN) return Error::from_errno(errno);
    if (auto r = wait(PollMode::kRead, WaitReason::kAccept); !r) return r.error();
  }
}

Result<void> NetFd::finish_connect() {
  Op op(this, PollMode::kWrite);
  return finish_connect_in(op);
}

Result<void> NetFd::finish_connect(const gort::Context& ctx) {
  Op op(this, PollMode::kWrite);
  Interrupt interrupt(this, op, ctx);
  if (interrupt.done_before()) return interrupt.refused<void>();
  return interrupt.outcome(finish_connect_in(op));
}

Result<void> NetFd::finish_connect_in(Op& op) {
  // No poll_prepare: it would drop the readiness that registering an
  // already-connected socket reports (Go's connect waits the same way).
  if (!op.entered()) return Errc::kClosed;
  for (;;) {
    if (auto r = wait(PollMode::kWrite, WaitReason::kConnect); !r) return r.error();
    int err = 0;
    socklen_t len = sizeof err;
    if (getsockopt(fd_, SOL_SOCKET, SO_ERROR, &err, &len) != 0) return Error::from_errno(errno);
    switch (err) {
      case EINPROGRESS:
      case EALREADY:
      case EINTR: continue;  // not yet (Go does the same)
      case 0:
      case EISCONN: return {};
      default: return Error::from_errno(err);
    }
  }
}

Result<void> NetFd::wait_ready(PollMode mode) {
  Op op(this, mode);
  return wait_ready_in(op);
}

Result<void> NetFd::wait_ready(const gort::Context& ctx, PollMode mode) {
  Op op(this, mode);
  Interrupt interrupt(this, op, ctx);
  if (interrupt.done_before()) return interrupt.refused<void>();
  return interrupt.outcome(wait_ready_in(op));
}

Result<void> NetFd::wait_ready_in(Op& op) {
  // closed(): close_borrowed deregistered the descriptor while this Op
  // waited for the direction's lock; pd() is gone and attach_slow does not
  // register a borrowed descriptor again.
  if (!op.entered() || closed()) return Errc::kClosed;
  if (PollStatus st = op.start(); st != PollStatus::kReady) return wait_error(st);
  // Readiness is edge-triggered here, but the owner may have stopped
  // reading before EAGAIN (so no new edge will come) or consumed an edge
  // whose data is still there: ask the kernel for the level first.  An edge
  // after this check sets the slot poll_prepare cleared, so it is not lost.
  pollfd probe{fd_, short(op.mode() == PollMode::kRead ? POLLIN : POLLOUT), 0};
  int rc;
  do {
    rc = ::poll(&probe, 1, 0);
  } while (rc < 0 && errno == EINTR);
  if (rc < 0) return Error::from_errno(errno);
  if (rc > 0) return {};  // ready, or an error or hang-up the owner's next call reports
  return wait(op.mode(), op.mode() == PollMode::kRead ? WaitReason::kIoRead : WaitReason::kIoWrite);
}

Result<void> NetFd::close_borrowed() {
  uint32_t old = refs_.fetch_or(kClosedBit, std::memory_order_acq_rel);
  if (old & kClosedBit) return Errc::kClosed;
  gort::detail::PollDesc* p = pd();
  bool ours = p != nullptr && gort::detail::poll_runtime_id() == runtime_id_;
  if (ours) gort::detail::poll_evict(p);
  // Every waiter holds its direction's lock while inside poll_wait: once
  // both are ours, nobody waits on p, and an Op that entered before the
  // closed bit but locks after us sees closed() and leaves (wait_ready_in).
  {
    std::lock_guard<gort::Mutex> r(read_mu_);
    std::lock_guard<gort::Mutex> w(write_mu_);
    // set_deadline holds a reference but no direction lock: it uses the
    // descriptor under attach_mu_, so it is done with it before it goes.
    std::lock_guard<gort::Mutex> a(attach_mu_);
    if (ours) gort::detail::poll_close(p);
    pd_.store(nullptr, std::memory_order_release);
  }
  leave();  // the object's own reference; destroy() then has nothing left to undo
  return {};
}

Result<void> NetFd::shutdown(int how) {
  // A reference keeps fd_ valid; no direction lock (a blocked writer holds
  // one, and shutting down is how one unblocks it).
  if (!enter()) return Errc::kClosed;
  int rc = ::shutdown(fd_, how);
  int err = errno;
  leave();
  if (rc != 0) return Error::from_errno(err);
  return {};
}

void NetFd::set_deadline(int64_t deadline_ns, PollMode mode) {
  if (!enter()) return;
  // relaxed: read back only by Interrupt, to restore what the user set;
  // a set_deadline racing with that restore is the user's race, as in Go.
  if (uint8_t(mode) & uint8_t(PollMode::kRead)) user_rd_.store(deadline_ns, std::memory_order_relaxed);
  if (uint8_t(mode) & uint8_t(PollMode::kWrite)) user_wd_.store(deadline_ns, std::memory_order_relaxed);
  // Without a runtime the deadline waits for attach() to apply it.
  (void)attach();
  // Our reference keeps an owned fd registered (only destroy(), after the
  // last reference, deregisters it); close_borrowed deregisters a borrowed
  // one while references remain, under attach_mu_.
  std::unique_lock<gort::Mutex> registration(attach_mu_, std::defer_lock);
  if (!owns_fd_) registration.lock();
  if (auto* p = pd(); p != nullptr && gort::detail::poll_runtime_id() == runtime_id_)
    gort::detail::poll_set_deadline(p, deadline_ns, mode);
  leave();
}

}  // namespace gort::net::detail
