// server.cpp: gort::net::Server (see server.h for the design, the shutdown
// steps and the invariants).
#include <gort/net/server.h>

#include <sys/socket.h>

#include <cstdio>
#include <new>
#include <string>
#include <utility>

#include <gort/runtime.h>
#include <gort/select.h>

#include "fatal.h"

namespace gort::net {

namespace {

// std::lock_guard carries no thread-safety annotations; this one does.
class GORT_SCOPED_CAPABILITY Locked {
 public:
  explicit Locked(gort::Mutex& mu) GORT_ACQUIRE(mu) : mu_(mu) { mu_.lock(); }
  ~Locked() GORT_RELEASE() { mu_.unlock(); }

 private:
  gort::Mutex& mu_;
};

}  // namespace

Server::Server(Handler handler, ServerOptions options)
    : handler_(std::move(handler)),
      options_(std::move(options)),
      drained_(std::make_shared<gort::Chan<std::monostate>>(0)) {
  auto [ctx, cancel] = gort::with_cancel(gort::background());
  handler_ctx_ = std::move(ctx);
  cancel_handlers_ = std::move(cancel);
}

Server::~Server() {
  int active;
  {
    Locked lock(mu_);
    active = active_;
  }
  if (active != 0)
    detail::fatal("gort::net::Server destroyed while " + std::to_string(active) +
                  " serve() calls or handlers run (shutdown() first)");
  cancel_handlers_();  // frees the context's place in its parent
}

bool Server::shutting_down() const {
  Locked lock(mu_);
  return shutting_down_;
}

std::size_t Server::connections() const {
  Locked lock(mu_);
  return open_;
}

uint64_t Server::refused() const {
  Locked lock(mu_);
  return refused_;
}

// ---- serving ----

Result<void> Server::serve(Listener& listener) {
  if (!track_listener(&listener)) return Error(Errc::kClosed, 0, "server shut down");
  Result<void> outcome;
  for (;;) {
    auto conn = listener.accept();
    if (!conn) {
      // Closed by shutdown() (or by the caller): Go's ErrServerClosed.
      if (conn.error() == Errc::kClosed && shutting_down())
        outcome = Error(Errc::kClosed, 0, "server shut down");
      else
        outcome = conn.error();
      break;
    }
    switch (admit()) {
      case Admission::kClosing: continue;  // *conn closes here: no handler once shutting down
      case Admission::kRefuse: refuse(*conn); continue;
      case Admission::kServe: break;
    }
    try {
      gort::Context ctx = options_.conn_context ? options_.conn_context(handler_ctx_, *conn) : handler_ctx_;
      gort::SpawnOptions spawn{options_.stack_size, options_.fiber_name};
      gort::spawn(
          spawn, [this](Conn c, gort::Context ctx) { run_connection(std::move(c), ctx); }, std::move(*conn),
          std::move(ctx));
    } catch (const std::bad_alloc&) {
      // No stack for a fiber: answered as if the server were full.
      leave(/*connection=*/true);
      refuse(*conn);
    }
  }
  untrack_listener(&listener);
  leave(/*connection=*/false);
  return outcome;
}

Server::Admission Server::admit() {
  Locked lock(mu_);
  if (shutting_down_) return Admission::kClosing;
  if (options_.max_connections > 0 && open_ >= std::size_t(options_.max_connections)) {
    ++refused_;
    return Admission::kRefuse;
  }
  ++open_;
  ++active_;
  return Admission::kServe;
}

void Server::refuse(Conn& conn) {
  // MSG_DONTWAIT: the acceptor never waits on a client it turns away.
  if (!options_.busy_reply.empty())
    (void)::send(conn.native_handle(), options_.busy_reply.data(), options_.busy_reply.size(),
                 MSG_DONTWAIT | MSG_NOSIGNAL);
  (void)conn.close();
}

void Server::run_connection(Conn conn, const gort::Context& ctx) {
  if (track(&conn)) {
    handler_(ctx, conn);
    untrack(&conn);
  }
  (void)conn.close();
  leave(/*connection=*/true);
}

bool Server::track(Conn* conn) {
  Locked lock(mu_);
  // Spawned before a shutdown's steps reached the set: take them here.
  if (closing_) return false;
  conns_.insert(conn);
  if (shutting_down_) (void)conn->shutdown(Shutdown::kRead);
  return true;
}

void Server::untrack(Conn* conn) {
  Locked lock(mu_);
  conns_.erase(conn);
  // A set never shrinks its buckets by itself: after a peak of connections
  // they would stay at the peak's size.
  if (conns_.bucket_count() > 1024 && conns_.size() * 8 < conns_.bucket_count()) conns_.rehash(conns_.size() * 2);
}

bool Server::track_listener(Listener* listener) {
  Locked lock(mu_);
  if (shutting_down_) return false;
  listeners_.insert(listener);
  ++active_;
  return true;
}

void Server::untrack_listener(Listener* listener) {
  Locked lock(mu_);
  listeners_.erase(listener);
}

void Server::leave(bool connection) {
  std::shared_ptr<gort::Chan<std::monostate>> drained;
  {
    Locked lock(mu_);
    if (connection) --open_;
    if (--active_ == 0 && shutting_down_ && !drained_closed_) {
      drained_closed_ = true;
      drained = drained_;  // our own reference: *this may be gone once it is closed
    }
  }
  if (drained) drained->close();
}

// ---- shutdown ----

Result<void> Server::shutdown(Deadline deadline) {
  if (deadline == kNoDeadline) return shutdown(gort::background());
  auto [ctx, cancel] = gort::with_deadline(gort::background(), deadline);
  auto r = shutdown(ctx);
  cancel();
  return r;
}

Result<void> Server::shutdown(const gort::Context& ctx) {
  bool close_drained = false;
  {  // Step 1.
    Locked lock(mu_);
    shutting_down_ = true;
    for (Listener* ln : listeners_) (void)ln->close();
    for (Conn* conn : conns_) (void)conn->shutdown(Shutdown::kRead);
    if (active_ == 0 && !drained_closed_) close_drained = drained_closed_ = true;
  }
  if (close_drained) drained_->close();
  // Step 2. Both cases may be ready at once (select picks at random):
  // finished is finished, whatever the deadline did meanwhile.
  (void)gort::select(gort::on_recv(*drained_), gort::on_recv(ctx.done()));
  if (drained_->closed()) return {};
  {  // Step 3.
    Locked lock(mu_);
    closing_ = true;
    for (Conn* conn : conns_) (void)conn->close();
  }
  cancel_handlers_();
  (void)drained_->recv();
  if (ctx.err() == gort::ContextError::kCanceled)
    return Error(Errc::kCanceled, 0, "connections still open were closed");
  return Error(Errc::kTimeout, 0, "connections still open at the deadline were closed");
}

}  // namespace gort::net
