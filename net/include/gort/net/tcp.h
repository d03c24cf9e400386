// tcp.h: TCP listeners and connections for fibers, with straight-line
// blocking code: a call that cannot complete parks the calling fiber on the
// runtime's poller (the worker runs other fibers) and resumes it when the
// socket is ready, its deadline passes, or it is closed.
//
//   auto ln = gort::net::listen_tcp("127.0.0.1:8080");
//   for (;;) {
//     auto c = ln->accept();
//     if (!c) break;
//     go_spawn([conn = std::move(*c)]() mutable {
//       char buf[4096];
//       for (;;) {
//         auto n = conn.read(buf, sizeof buf);
//         if (!n || !conn.write_all(buf, *n)) return;  // kEof, kReset, ...
//       }
//     });
//   }
//
// Rules
//  * Calls that may wait must be made from a fiber of the runtime that
//    created the object (else Errc::kNotInFiber); objects must not outlive
//    that runtime's gort::run (destroying them afterwards just closes the fd).
//  * Any number of fibers may use one Conn: reads are serialised among
//    themselves, writes likewise (one of each proceeds at a time, as in Go).
//    Exception: read_line's buffer belongs to the caller, so read_line must
//    not run concurrently with another read or read_line on the same Conn.
//  * A Conn must not be destroyed while another fiber is inside one of its
//    calls (close() it instead; the fd goes when the last call returns).
//  * close() may be called from any fiber at any time: fibers blocked in
//    read/write/accept on the object return Errc::kClosed, later calls too.
//    The fd itself is closed when the last call in progress returns.
//  * Deadlines (Go semantics): absolute time points that apply to calls in
//    progress and to later ones, until changed; a passed deadline makes
//    calls fail with Errc::kTimeout without consuming data. kNoDeadline
//    clears. Setting a deadline cannot fail (on a closed object it does
//    nothing).
//  * Cancellation: dial_tcp, accept, read, write, write_all and read_line
//    have overloads taking a gort::Context first. Canceling the context
//    unblocks the call with Errc::kCanceled (its deadline passing, with
//    Errc::kTimeout); a call whose context is already done fails at once.
//    Nothing else on the object changes: its own deadlines stay as set.
//    The overloads without a Context are unchanged and cost nothing more.
//  * listen_tcp works anywhere, also before gort::run: the listener joins
//    the poller of the runtime its first accept runs under.
//  * Errors name the operation and address (Error::message(), e.g.
//    "dial tcp 127.0.0.1:1: connection refused"); kEof stays bare.
#pragma once

#include <chrono>
#include <cstddef>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include <gort/context.h>
#include <gort/net/address.h>
#include <gort/net/result.h>

namespace gort::net {

using Clock = std::chrono::steady_clock;
using Deadline = Clock::time_point;
inline constexpr Deadline kNoDeadline = Deadline::max();

namespace detail {
class NetFd;
class LineBuffer;
}  // namespace detail

enum class Shutdown { kRead, kWrite, kBoth };

class Conn {
 public:
  Conn();
  explicit Conn(std::unique_ptr<detail::NetFd> fd);
  Conn(Conn&&) noexcept;
  Conn& operator=(Conn&&) noexcept;
  ~Conn();  // closes if still open

  // Up to n bytes; waits until at least one is available. 0 only for n == 0.
  Result<std::size_t> read(void* buf, std::size_t n);
  Result<std::size_t> read(std::span<char> buf) { return read(buf.data(), buf.size()); }
  Result<std::size_t> read(const Context& ctx, void* buf, std::size_t n);
  // One successful send: at least one byte, maybe fewer than n.
  Result<std::size_t> write(const void* buf, std::size_t n);
  Result<std::size_t> write(const Context& ctx, const void* buf, std::size_t n);
  // Everything, or an error (after which an unknown prefix may have been sent).
  Result<void> write_all(const void* buf, std::size_t n);
  Result<void> write_all(std::string_view s) { return write_all(s.data(), s.size()); }
  Result<void> write_all(const Context& ctx, const void* buf, std::size_t n);
  Result<void> write_all(const Context& ctx, std::string_view s) { return write_all(ctx, s.data(), s.size()); }
  // The next line, without its "\n" or "\r\n". A line whose content exceeds
  // max_len bytes is Errc::kLineTooLong: nothing is consumed or truncated,
  // and the buffered bytes remain readable with read(). At end of file an
  // unterminated last line is returned as a line, then kEof. Bytes buffered
  // here are served first by read().
  Result<std::string> read_line(std::size_t max_len = 64 * 1024);
  Result<std::string> read_line(const Context& ctx, std::size_t max_len = 64 * 1024);

  Result<void> shutdown(Shutdown how);
  Result<void> close();
  bool is_open() const;

  void set_deadline(Deadline t);  // read and write
  void set_read_deadline(Deadline t);
  void set_write_deadline(Deadline t);

  Result<Address> local_address() const;
  Result<Address> remote_address() const;
  Result<void> set_no_delay(bool on);  // on by default
  int native_handle() const;           // -1 when closed

 private:
  // read_line's body: read_chunk(area, room) reads more input.
  template <class ReadChunk>
  Result<std::string> read_line_with(std::size_t max_len, ReadChunk read_chunk);
  Error op_error(const Error& e, const char* op) const;  // names op and both addresses

  std::unique_ptr<detail::NetFd> fd_;
  std::unique_ptr<detail::LineBuffer> lines_;  // created by the first read_line
};

struct ListenOptions {
  int backlog = 4096;       // capped by net.core.somaxconn
  bool reuse_port = false;  // SO_REUSEPORT (SO_REUSEADDR is always set)
};

class Listener {
 public:
  Listener();
  explicit Listener(std::unique_ptr<detail::NetFd> fd);
  Listener(Listener&&) noexcept;
  Listener& operator=(Listener&&) noexcept;
  ~Listener();

  // Waits for a connection. When the process is out of file descriptors
  // (EMFILE/ENFILE, or ENOBUFS/ENOMEM) it does not fail or spin: it sleeps
  // 5 ms, doubling up to 1 s, and tries again until a descriptor frees up
  // (as Go's http.Server does); close() ends the wait.
  Result<Conn> accept();
  Result<Conn> accept(const Context& ctx);
  Result<void> close();
  bool is_open() const;
  void set_deadline(Deadline t);  // for accept
  Result<Address> local_address() const;
  uint64_t accept_backoffs() const;  // times accept slept for lack of descriptors
  int native_handle() const;

 private:
  Result<Conn> accept_with(const Context* ctx);
  Error op_error(const Error& e) const;  // "accept tcp <local address>: ..."

  std::unique_ptr<detail::NetFd> fd_;
  uint64_t backoffs_ = 0;
};

Result<Listener> listen_tcp(std::string_view address, const ListenOptions& options = {});
// n listeners on one address (SO_REUSEPORT on each, whatever options say;
// port 0 picks one port for all of them): the kernel spreads new
// connections over them by their addresses, and each has its own backlog.
// One acceptor fiber per listener accepts in parallel with the others, so a
// burst of connections is not held to one fiber's share of one worker and
// one backlog.  As with any SO_REUSEPORT socket, another socket of the same
// user that sets it may join the group; closing one listener resets the
// connections still in its backlog.  n < 1 fails with kSystem (EINVAL).
Result<std::vector<Listener>> listen_tcp_group(std::string_view address, int n, const ListenOptions& options = {});
// timeout 0: no limit besides the kernel's (and the context's deadline).
// Tries each resolved address in turn within the one timeout.
Result<Conn> dial_tcp(std::string_view address, std::chrono::nanoseconds timeout = {});
Result<Conn> dial_tcp(const Context& ctx, std::string_view address, std::chrono::nanoseconds timeout = {});

}  // namespace gort::net
