// dumb_fiber -- the DUMB server on gort: one fiber per connection, written as
// straight-line blocking code over gort::net.
//
// Design.  The main fiber listens and spawns the acceptor fiber, which spawns
// one fiber per connection.  A connection fiber loops: read into its buffer,
// frame with dumb::LineFramer, parse, execute, and append the reply to a
// bounded output buffer that is flushed before the fiber blocks again (on a
// read, a WAIT, a STREAM) or when it passes kOutLimit -- so pipelined requests
// cost one write, not one per reply.  Every blocking call parks the fiber on
// the runtime's poller or timer heap; its worker runs other fibers meanwhile.
//
//   WAIT    a read with the WAIT's end as its deadline: a parked fiber holds
//           no thread, and a peer that resets meanwhile is noticed at once
//           (Connection::wait_until).
//   BURN    gort::on_worker_stack(dumb::burn): the 2.8 MB recursion runs on
//           the worker's 8 MiB stack, so fiber stacks stay one or two pages
//           however deep a BURN a connection once ran.
//   STREAM  dumb::StreamCursor chunks (<= 64 KiB, static storage) written
//           with write_all: a slow reader parks its fiber, and the server
//           holds nothing for it beyond the chunk being written
//           (docs/PROTOCOL.md, "Backpressure").
//
// Memory per connection: the fiber (a page or two of stack), kReadBuffer,
// the framer's partial line (<= 1025 bytes), the output buffer (< kOutLimit
// plus one reply) and the socket.
//
// Limits (docs/SERVERS.md): past --max-connections the acceptor answers a
// new client kServerBusy and closes it; a connection that sends nothing for
// --idle-timeout while no request is in progress is told kIdleTimeout and
// closed (the read waiting for the next request has that deadline).
//
// Stop protocol (SIGINT/SIGTERM; fiber_server.h has the signal hand-off),
// the same contract as server_main.h:
//   1. The main fiber, woken by wait_for_stop(), sets `stopping`, shuts down
//      the read side of every registered connection (an idle fiber's read
//      returns EOF) and closes the Listener (accept() returns kClosed).
//   2. Each connection finishes the request it is executing, flushes, and
//      closes; fibers check `stopping` before starting the next request.
//   3. The main fiber waits until every connection fiber and the acceptor
//      have finished (`active` reaches 0) and returns 0; past --drain-ms the
//      process exits 0 at once (FiberServer::drain).
// `active` and the registry live on the main fiber's stack; nothing touches
// them once `active` is 0 (a fiber's decrement is its last access), and the
// main fiber does not return before that.
//
// Rejected: dumb::Session, which computes BURN inside next() on the caller's
// stack -- the fiber's; here LineFramer + parse + to_action, with BURN taken
// out to on_worker_stack.  A write per reply: a pipelined burst of PINGs
// would cost a syscall each.  Bigger fiber stacks instead of on_worker_stack:
// every connection that once ran BURN 10000 would keep 2.8 MB committed.

#include <atomic>
#include <ctime>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <memory>
#include <string>
#include <string_view>
#include <unordered_set>
#include <variant>

#include <gort/gort.h>
#include <gort/net.h>
#include <gort/worker_stack.h>

#include "dumb/fiber_server.h"
#include "dumb/protocol.h"
#include "dumb/server_main.h"

namespace {

using namespace std::chrono_literals;
using gort::net::Conn;

// Per connection, on the heap, and resident for the connection's life: it is
// most of what an idle connection costs. 2 KiB holds a longest line (1024 +
// newline) with room to spare; an 8 KiB buffer made RSS at 10 000 idle-ish
// connections 127 MiB instead of 67 MiB (12.7 against 6.7 KiB each).
constexpr std::size_t kReadBuffer = 2 * 1024;
constexpr std::size_t kOutLimit = 16 * 1024;   // flush the batched replies past this

// What the main fiber, the acceptor and the connection fibers share.
class Server {
 public:
  bool stopping() const noexcept {
    return stopping_flag_.load(std::memory_order_acquire);  // pairs with begin_stop's store
  }

  // A connection registered after the stop began is shut down at once.
  void track(Conn* conn) {
    std::lock_guard lock(mutex_);
    conns_.insert(conn);
    if (stopping_) (void)conn->shutdown(gort::net::Shutdown::kRead);
  }
  void untrack(Conn* conn) {
    std::lock_guard lock(mutex_);
    conns_.erase(conn);
  }

  // Step 2 of the stop protocol (the Listener is closed by the caller).
  void begin_stop() {
    std::lock_guard lock(mutex_);
    stopping_ = true;
    stopping_flag_.store(true, std::memory_order_release);  // pairs with stopping()
    for (Conn* conn : conns_) (void)conn->shutdown(gort::net::Shutdown::kRead);
  }

  // Fibers still running (connections and the acceptor).  Incremented
  // before the spawn, decremented as a fiber's last access to *this.
  std::atomic<int> active{0};
  // Connections open now, for --max-connections: incremented by the
  // acceptor, decremented by a connection fiber once it has closed its
  // socket.  Relaxed: a count; a new client may be refused a moment late.
  std::atomic<int> open{0};

 private:
  gort::Mutex mutex_;
  std::unordered_set<Conn*> conns_;  // connections open now (guarded by mutex_)
  bool stopping_ = false;            // guarded by mutex_; mirrored in stopping_flag_
  std::atomic<bool> stopping_flag_{false};
};

// One connection's output: replies batched up to kOutLimit.
class Output {
 public:
  explicit Output(Conn& conn) : conn_(conn) {}
  bool ok() const noexcept { return ok_; }
  void append(std::string_view reply) {
    out_.append(reply);
    if (out_.size() >= kOutLimit) flush();
  }
  void flush() {
    if (ok_ && !out_.empty()) ok_ = conn_.write_all(out_).ok();
    out_.clear();
  }
  // The STREAM body, chunk by chunk, after what is batched.
  void stream(std::uint64_t n) {
    flush();
    for (dumb::StreamCursor cursor(n); ok_ && !cursor.done();) {
      std::string_view chunk = cursor.peek();
      ok_ = conn_.write_all(chunk).ok();
      cursor.consume(chunk.size());
    }
  }

 private:
  Conn& conn_;
  std::string out_;
  bool ok_ = true;  // false once a write failed: the peer is gone
};

// One connection: its input buffer, framer and output.  The input buffer
// holds bytes read but not yet framed, [begin_, end_); a WAIT reads ahead
// into the rest of it (see wait_until).
class Connection {
 public:
  Connection(Conn& conn, std::chrono::milliseconds idle_timeout)
      : conn_(conn), idle_timeout_(idle_timeout), buf_(std::make_unique<char[]>(kReadBuffer)), out_(conn) {}

  // Serves requests until EOF, an I/O error, a reset during a WAIT, the
  // idle timeout or the stop.
  void serve(const Server& server) {
    while (out_.ok() && !peer_gone_ && !server.stopping()) {
      if (begin_ == end_) {
        arm_idle_deadline();
        auto n = conn_.read(buf_.get(), kReadBuffer);
        if (!n && n.error() == gort::net::Errc::kTimeout) {
          (void)conn_.write_all(dumb::kIdleTimeout);  // the send buffer is empty: nothing was asked
          break;
        }
        if (!n) break;  // EOF (also a stop's shutdown), reset: every complete request was answered
        begin_ = 0;
        end_ = *n;
      }
      while (begin_ < end_ && out_.ok() && !peer_gone_ && !server.stopping()) {
        std::string_view in(buf_.get() + begin_, end_ - begin_);
        auto frame = framer_.next(in);
        begin_ = end_ - in.size();
        if (!frame) break;
        if (frame->kind == dumb::Frame::Kind::TooLong) {
          out_.append(dumb::kLineTooLong);
        } else {
          execute(frame->line);
        }
      }
      out_.flush();
    }
  }

 private:
  // The read that waits for the next request has the idle deadline. It is
  // re-armed only once it is closer than idle_timeout, to between T and
  // 9T/8 from now: re-arming on every request would put a timer-heap
  // update and a clock read on every request. The clock is the coarse one
  // (a few milliseconds' resolution, no more than T/8 matters here).
  void arm_idle_deadline() {
    if (idle_timeout_.count() == 0) return;
    timespec ts;
    clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
    // steady_clock is CLOCK_MONOTONIC; the coarse clock is its cheap reading.
    auto now = gort::net::Clock::time_point(std::chrono::seconds(ts.tv_sec) + std::chrono::nanoseconds(ts.tv_nsec));
    if (idle_deadline_ != gort::net::kNoDeadline && idle_deadline_ - now >= idle_timeout_) return;
    idle_deadline_ = now + idle_timeout_ + idle_timeout_ / 8;
    (void)conn_.set_read_deadline(idle_deadline_);
  }

  void execute(std::string_view line) {
    dumb::Request request = dumb::parse(line);  // `line` is not used past this point (wait_until moves bytes)
    if (const auto* burn = std::get_if<dumb::Burn>(&request)) {
      std::uint64_t sum = gort::on_worker_stack([n = burn->n] { return dumb::burn(n); });
      out_.append(dumb::format_result(sum));
      return;
    }
    dumb::Action action = dumb::to_action(request, scratch_);  // never a Burn here: no deep stack
    switch (action.kind) {
      case dumb::Action::Kind::Reply:
        out_.append(action.reply);
        break;
      case dumb::Action::Kind::Wait:
        out_.flush();  // the replies before it must not wait with it
        if (!wait_until(gort::net::Clock::now() + std::chrono::milliseconds(action.wait_ms))) {
          peer_gone_ = true;
          return;
        }
        out_.append(dumb::kDone);
        break;
      case dumb::Action::Kind::Stream:
        out_.stream(action.stream_bytes);
        break;
    }
  }

  // A WAIT: parks until `deadline`, reading ahead meanwhile so that a peer
  // that resets the connection frees it at once instead of holding it (and
  // its descriptor) for the whole WAIT.  Returns false on such a reset.
  // What arrives is kept for after the DONE: pipelined requests wait in the
  // buffer, and once it is full the fiber just sleeps (a client that fills
  // it is sending, not gone).  A half-close is no reason to stop: the
  // protocol still owes it the DONE (docs/PROTOCOL.md), so is a stop's
  // shutdown; after either, reads never block again, so the fiber sleeps.
  bool wait_until(gort::net::Deadline deadline) {
    while (!read_closed_) {
      std::memmove(buf_.get(), buf_.get() + begin_, end_ - begin_);
      end_ -= begin_;
      begin_ = 0;
      if (end_ == kReadBuffer) break;
      (void)conn_.set_read_deadline(deadline);
      auto n = conn_.read(buf_.get() + end_, kReadBuffer - end_);
      (void)conn_.set_read_deadline(gort::net::kNoDeadline);
      idle_deadline_ = gort::net::kNoDeadline;  // serve() arms the idle deadline again
      if (n) {
        end_ += *n;
      } else if (n.error() == gort::net::Errc::kTimeout) {
        return true;
      } else if (n.error() == gort::net::Errc::kEof) {
        read_closed_ = true;
      } else {
        return false;  // reset, or another error: nobody is there for the DONE
      }
    }
    gort::sleep_until(deadline);
    return true;
  }

  Conn& conn_;
  const std::chrono::milliseconds idle_timeout_;  // 0: none
  gort::net::Deadline idle_deadline_ = gort::net::kNoDeadline;  // the read deadline armed, if any
  std::unique_ptr<char[]> buf_;  // kReadBuffer bytes
  std::size_t begin_ = 0;        // first byte not yet framed
  std::size_t end_ = 0;          // one past the last byte read
  dumb::LineFramer framer_;
  Output out_;
  std::string scratch_;          // owns a RESULT line
  bool read_closed_ = false;     // a read-ahead saw EOF: no read blocks any more
  bool peer_gone_ = false;       // the peer reset during a WAIT: close without answering
};

void serve_connection(Server& server, Conn conn, std::chrono::milliseconds idle_timeout) {
  server.track(&conn);
  Connection(conn, idle_timeout).serve(server);
  server.untrack(&conn);
  (void)conn.close();
  server.open.fetch_sub(1, std::memory_order_relaxed);
  server.active.fetch_sub(1, std::memory_order_release);  // last access; pairs with the drain's acquire
}

void accept_loop(Server& server, dumb::FiberServer& fiber_server) {
  for (;;) {
    auto conn = fiber_server.listener().accept();
    if (!conn) {
      if (conn.error() == gort::net::Errc::kClosed) break;
      std::fprintf(stderr, "dumb_fiber: accept: %s\n", conn.error().message().c_str());
      gort::sleep_for(10ms);  // a persistent error must not spin
      continue;
    }
    const dumb::ServerConfig& config = fiber_server.config();
    if (server.open.load(std::memory_order_relaxed) >= config.max_connections) {
      dumb::refuse_busy(*conn);  // answered and closed, not left in the backlog
      continue;
    }
    server.open.fetch_add(1, std::memory_order_relaxed);
    server.active.fetch_add(1, std::memory_order_relaxed);
    go_spawn([&server, idle = config.idle_timeout](Conn c) { serve_connection(server, std::move(c), idle); },
             std::move(*conn));
  }
  if (!server.stopping()) fiber_server.fail();  // unexpected: have the main fiber stop
  server.active.fetch_sub(1, std::memory_order_release);
}

int serve(dumb::FiberServer& fiber_server) {
  Server server;
  server.active.fetch_add(1, std::memory_order_relaxed);
  go_spawn([&] { accept_loop(server, fiber_server); });
  bool signalled = fiber_server.wait_for_stop();
  server.begin_stop();
  (void)fiber_server.listener().close();
  fiber_server.drain(server.active);
  return signalled ? 0 : 1;
}

}  // namespace

// An idle connection is closed after two minutes: well past the longest
// request (WAIT 60000), short enough that connections a client forgot, or
// slowloris ones, give their descriptors back (docs/SERVERS.md, "Limits").
constexpr std::chrono::milliseconds kDefaultIdleTimeout{120'000};

int main(int argc, char** argv) {
  return dumb::fiber_server_main(argc, argv, "dumb_fiber", serve, kDefaultIdleTimeout);
}
