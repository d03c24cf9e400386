// dumb_fiber -- the DUMB server on gort: one fiber per connection, written as
// straight-line blocking code over gort::net.
//
// Design.  gort::net::Server (net/server.h) accepts and runs handle() in a
// fiber per connection; fiber_server.h runs it until SIGINT/SIGTERM.  A
// connection is the Go peer's loop (bench/peers/go-dumb): read into its
// buffer, frame with dumb::LineFramer, parse, execute, and append the reply
// to a bounded output buffer that is flushed before the fiber blocks again
// (on a read, a WAIT, a STREAM) or when it passes kOutLimit -- so pipelined
// requests cost one write, not one per reply.  Every blocking call parks the
// fiber on the runtime's poller or timer heap; its worker runs other fibers
// meanwhile.
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
//           (docs/PROTOCOL.md, "Pipelining, ordering and backpressure").
//
// Memory per connection: the fiber (a page or two of stack), kReadBuffer,
// the framer's partial line (<= 1025 bytes), the output buffer (< kOutLimit
// plus one reply) and the socket.
//
// Limits (docs/SERVERS.md): past --max-connections the Server answers a new
// client kServerBusy and closes it; a connection that sends nothing for
// --idle-timeout while no request is in progress is told kIdleTimeout and
// closed (the read waiting for the next request has that deadline).
//
// Stop: a connection has no stop logic of its own.  The Server's shutdown
// shuts its read side down, so the read for the next request returns end of
// file once the requests already received are answered; past --drain-ms it
// closes the connection (writes fail) and cancels the handler's context,
// which ends a WAIT's sleep.
//
// Rejected: dumb::Session, which computes BURN inside next() on the caller's
// stack -- the fiber's; here LineFramer + parse + to_action, with BURN taken
// out to on_worker_stack.  A write per reply: a pipelined burst of PINGs
// would cost a syscall each.  Bigger fiber stacks instead of on_worker_stack:
// every connection that once ran BURN 10000 would keep 2.8 MB committed.

#include <chrono>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <variant>

#include <gort/gort.h>
#include <gort/net.h>
#include <gort/worker_stack.h>

#include "common/fiber_server.h"
#include "common/server_main.h"
#include "dumb/protocol.h"

namespace {

using namespace std::chrono_literals;
using gort::net::Conn;

// Per connection, on the heap, and resident for the connection's life: it is
// most of what an idle connection costs. 2 KiB holds a longest line (1024 +
// newline) with room to spare; an 8 KiB buffer made RSS at 10 000 idle-ish
// connections 127 MiB instead of 67 MiB (12.7 against 6.7 KiB each).
constexpr std::size_t kReadBuffer = 2 * 1024;
constexpr std::size_t kOutLimit = 16 * 1024;  // flush the batched replies past this

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
  Connection(const gort::Context& ctx, Conn& conn, std::chrono::milliseconds idle_timeout)
      : ctx_(ctx), conn_(conn), idle_timeout_(idle_timeout), buf_(std::make_unique<char[]>(kReadBuffer)), out_(conn) {}

  // The Go peer's loop: the next request, its reply; until end of file
  // (also the shutdown's), an I/O error, a reset during a WAIT or the idle
  // timeout.
  void serve() {
    while (auto request = next_request()) {
      if (request->kind == dumb::Frame::Kind::kTooLong) {
        out_.append(dumb::kLineTooLong);
      } else {
        execute(request->line);
      }
      if (!out_.ok() || peer_gone_) return;
    }
  }

 private:
  // The next request line, reading more when the buffer holds no complete
  // one -- after flushing the replies batched so far, which the client may
  // be waiting for.  nullopt: end of file, an error or the idle timeout,
  // with every complete request answered.
  std::optional<dumb::Frame> next_request() {
    for (;;) {
      std::string_view in(buf_.get() + begin_, end_ - begin_);
      auto frame = framer_.next(in);
      begin_ = end_ - in.size();
      if (frame) return frame;
      out_.flush();
      if (!out_.ok() || !read_more()) return std::nullopt;
    }
  }

  bool read_more() {
    arm_idle_deadline();
    auto n = conn_.read(buf_.get(), kReadBuffer);
    if (!n && n.error() == gort::net::Errc::kTimeout) {
      (void)conn_.write_all(dumb::kIdleTimeout);  // the send buffer is empty: nothing was asked
      return false;
    }
    if (!n) return false;  // EOF (also the shutdown's), reset
    begin_ = 0;
    end_ = *n;
    return true;
  }

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
      case dumb::Action::Kind::kReply: out_.append(action.reply); break;
      case dumb::Action::Kind::kWait:
        out_.flush();  // the replies before it must not wait with it
        if (!wait_until(gort::net::Clock::now() + std::chrono::milliseconds(action.wait_ms))) {
          peer_gone_ = true;
          return;
        }
        out_.append(dumb::kDone);
        break;
      case dumb::Action::Kind::kStream: out_.stream(action.stream_bytes); break;
    }
  }

  // A WAIT: parks until `deadline`, reading ahead meanwhile so that a peer
  // that resets the connection frees it at once instead of holding it (and
  // its descriptor) for the whole WAIT.  Returns false on such a reset.
  // What arrives is kept for after the DONE: pipelined requests wait in the
  // buffer, and once it is full the fiber just sleeps (a client that fills
  // it is sending, not gone).  A half-close is no reason to stop: the
  // protocol still owes it the DONE (docs/PROTOCOL.md), so is the
  // shutdown's; after either, reads never block again, so the fiber sleeps,
  // until the shutdown's deadline at the latest (ctx_).
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
    gort::sleep_until(ctx_, deadline);
    return true;
  }

  const gort::Context& ctx_;  // canceled when the shutdown's drain ends
  Conn& conn_;
  const std::chrono::milliseconds idle_timeout_;                // 0: none
  gort::net::Deadline idle_deadline_ = gort::net::kNoDeadline;  // the read deadline armed, if any
  std::unique_ptr<char[]> buf_;                                 // kReadBuffer bytes
  std::size_t begin_ = 0;                                       // first byte not yet framed
  std::size_t end_ = 0;                                         // one past the last byte read
  dumb::LineFramer framer_;
  Output out_;
  std::string scratch_;       // owns a RESULT line
  bool read_closed_ = false;  // a read-ahead saw EOF: no read blocks any more
  bool peer_gone_ = false;    // the peer reset during a WAIT: close without answering
};

void handle(const gort::Context& ctx, Conn& conn, std::chrono::milliseconds idle_timeout) {
  Connection(ctx, conn, idle_timeout).serve();
}

int serve(common::FiberServer& fiber_server) {
  gort::net::Server server(
      [idle = fiber_server.config().idle_timeout](const gort::Context& ctx, Conn& conn) { handle(ctx, conn, idle); },
      fiber_server.server_options("dumb_fiber connection"));
  return fiber_server.serve_until_stopped(server);
}

}  // namespace

// An idle connection is closed after two minutes: well past the longest
// request (WAIT 60000), short enough that connections a client forgot, or
// slowloris ones, give their descriptors back (docs/SERVERS.md, "Limits").
constexpr std::chrono::milliseconds kDefaultIdleTimeout{120'000};

int main(int argc, char** argv) {
  return common::fiber_server_main(argc, argv, "dumb_fiber", serve, kDefaultIdleTimeout);
}
