// server.h: gort::net::Server, a TCP server that runs a handler per
// connection, each in its own fiber, and shuts down gracefully: Go's
// http.Server Serve and Shutdown, for plain TCP.
//
//   gort::net::Server server([](const gort::Context& ctx, gort::net::Conn& conn) {
//     while (auto line = conn.read_line()) {            // kEof once shut down
//       if (!conn.write_all(*line + "\n")) return;
//     }
//   });
//   go_spawn([&] { (void)server.serve(*ln); });         // kClosed after shutdown
//   ...
//   (void)server.shutdown(gort::Clock::now() + 2s);    // kTimeout: some were cut off
//
// Design. serve(listener) accepts until the listener is closed and spawns a
// fiber per connection. That fiber owns the Conn: it registers it in the
// server's set of open connections, calls the handler with a reference,
// takes it out of the set when the handler returns and closes it. The
// server counts the serve() loops and connection fibers running (`active`).
// shutdown(deadline or ctx):
//   1. Marks the server shutting down, closes every listener being served
//      (serve() returns Errc::kClosed, as later calls do) and shuts down the
//      read side of every open connection: a handler blocked in a read gets
//      Errc::kEof, a busy one finishes its work and gets kEof at its next
//      read, once the bytes already received are consumed. Writes still
//      work, so replies in progress are delivered.
//   2. Waits until `active` is 0, or the deadline passes (the ctx is done).
//   3. If time ran out: cancels the handlers' context (the one each handler
//      gets) and closes every connection still open, so their calls in
//      progress and later ones fail with Errc::kClosed; then waits until
//      `active` is 0. Returns Errc::kTimeout (Errc::kCanceled for a canceled
//      ctx) when this step ran, else success.
// A handler must therefore return once its Conn's calls fail and its
// context is done: one that waits on something else (a sleep, a channel)
// should wait with the context. shutdown() called from a handler would wait
// for itself.
//
// Invariants.
//  * A Conn is in the set exactly while its handler may use it, and the set
//    is read and changed under one mutex: shutdown() calls shutdown()/close()
//    on a Conn only under it, so the fiber that takes its Conn out (under
//    the same mutex) may destroy it at once. Calling them while the handler
//    is inside a call on the Conn is safe (tcp.h: NetFd keeps the fd alive).
//  * A connection fiber that registers after step 1 (spawned just before)
//    shuts its own read side down, after step 3 closes itself: the steps
//    reach every connection, whenever it registered.
//  * A connection accepted once the server is shutting down gets no handler:
//    it is closed at once.
//  * A fiber's decrement of `active` is its last access to the server, and
//    the channel that wakes shutdown() is closed after the mutex is released,
//    through a reference of the fiber's own: shutdown() may return, and its
//    caller destroy the server, as soon as it wakes.
//  * A handler may give its Conn to other fibers (a writer fiber beside a
//    reader) only if it waits for them before returning: the Conn is closed
//    and destroyed when the handler returns.
//
// Limits. max_connections: past it a new connection is answered busy_reply
// (sent without waiting, best effort: a new socket's empty send buffer
// takes a line) and closed, not left in the listen backlog.
//
// Rejected.
//  * An idle timeout in the server: only the protocol knows where a request
//    ends and so when a connection is idle; a read deadline in the handler
//    says it (Go's http.Server can, because it parses the requests).
//  * An expired read deadline instead of shutting the read side down (the
//    Go peer's way, bench/peers/go-dumb): a handler that sets its own read
//    deadline afterwards (an idle timeout, a WAIT) would undo it; a shut
//    read side stays shut.
//  * Closing idle connections at step 1, as http.Server does: over plain TCP
//    the server cannot tell an idle connection from a busy one; end of file
//    is how the handler learns that no request will come.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <unordered_set>
#include <variant>

#include <gort/chan.h>
#include <gort/context.h>
#include <gort/mutex.h>
#include <gort/net/result.h>
#include <gort/net/tcp.h>

namespace gort::net {

struct ServerOptions {
  int max_connections = 0;           // connections served at once; 0: no limit
  std::string busy_reply;            // sent to a connection refused past max_connections ("": none)
  const char* fiber_name = nullptr;  // SpawnOptions::name of the connection fibers (static storage)
  std::size_t stack_size = 0;        // SpawnOptions::stack_size of the connection fibers; 0: default
  // Go's http.Server.ConnContext: runs in serve()'s fiber for each
  // connection it admits, in accept order, before the connection's fiber
  // starts; returns the context its handler gets, which must derive from
  // `base` (the server's, canceled by step 3). Keep it short: accepting
  // waits for it. Unset: handlers get `base`.
  std::function<gort::Context(const gort::Context& base, Conn& conn)> conn_context;
};

class Server {
 public:
  // Runs once per connection, in the connection's fiber, from many fibers
  // at once. ctx (or the one conn_context derived from it) is canceled when
  // shutdown() runs out of time (step 3).
  using Handler = std::function<void(const gort::Context& ctx, Conn& conn)>;

  explicit Server(Handler handler, ServerOptions options = {});
  Server(const Server&) = delete;
  Server& operator=(const Server&) = delete;
  // A fatal error while serve() or a handler runs: shutdown() first.
  ~Server();

  // Accepts on `listener` (which the caller keeps alive until this returns)
  // and serves each connection in a new fiber. Returns Errc::kClosed once
  // the listener is closed (by shutdown(), or at once if it already ran),
  // or the accept error that stopped it. Out of descriptors it waits
  // (Listener::accept). Any fiber; several listeners may be served at once.
  Result<void> serve(Listener& listener);

  // Steps 1-3 above; returns once every handler and serve() has returned.
  // kNoDeadline waits as long as the handlers take. Any fiber but a handler.
  Result<void> shutdown(Deadline deadline);
  Result<void> shutdown(const gort::Context& ctx);

  bool shutting_down() const;
  std::size_t connections() const;  // open now: handlers running
  uint64_t refused() const;         // connections refused past max_connections

 private:
  void run_connection(Conn conn, const gort::Context& ctx);
  // Whether the new connection gets a fiber: counts it in, or refuses it.
  enum class Admission { kServe, kRefuse, kClosing };
  Admission admit();
  void refuse(Conn& conn);
  bool track(Conn* conn);
  void untrack(Conn* conn);
  void leave(bool connection);  // a serve() or connection fiber is done; its last access
  bool track_listener(Listener* listener);
  void untrack_listener(Listener* listener);

  const Handler handler_;
  const ServerOptions options_;
  gort::Context handler_ctx_;  // what handlers get; canceled by step 3
  gort::CancelFunc cancel_handlers_;
  // Closed when `active_` reaches 0 during a shutdown; shared so that the
  // fiber closing it holds it past its last access to the server.
  const std::shared_ptr<gort::Chan<std::monostate>> drained_;
  mutable gort::Mutex mu_;
  std::unordered_set<Conn*> conns_ GORT_GUARDED_BY(mu_);          // open connections, owned by their fibers
  std::unordered_set<Listener*> listeners_ GORT_GUARDED_BY(mu_);  // being served, owned by serve()'s callers
  int active_ GORT_GUARDED_BY(mu_) = 0;                           // serve() calls and connection fibers running
  std::size_t open_ GORT_GUARDED_BY(mu_) = 0;                     // connection fibers running (<= max_connections)
  uint64_t refused_ GORT_GUARDED_BY(mu_) = 0;
  bool shutting_down_ GORT_GUARDED_BY(mu_) = false;   // step 1 began
  bool closing_ GORT_GUARDED_BY(mu_) = false;         // step 3 began
  bool drained_closed_ GORT_GUARDED_BY(mu_) = false;  // drained_ is (being) closed
};

}  // namespace gort::net
