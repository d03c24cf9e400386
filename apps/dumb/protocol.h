// dumb/protocol.h -- the DUMB protocol, shared by every DUMB server.
//
// DUMB is a tiny line-oriented TCP protocol (default port 8090) used to
// compare server architectures (fibers, thread-per-connection, select,
// epoll, ...).  This module is everything about DUMB except the I/O: line
// framing, request parsing, reply formatting, the BURN computation and the
// STREAM body generator.  A server is then only its accept/read/write loop.
// docs/PROTOCOL.md is the normative description; this header mirrors it.
//
//   PING          -> "PONG\n"
//   WAIT <ms>     -> "DONE\n" after <ms> milliseconds      (0 <= ms <= 60000)
//   BURN <n>      -> "RESULT <n(n+1)/2>\n", by n-deep recursion (0 <= n <= 10000)
//   STREAM <n>    -> n bytes 'A', immediately followed by "DONE\n"
//                                                           (0 <= n <= 2^30)
//   unknown command (incl. the empty line) -> "UNKNOWN_COMMAND\n"
//   bad argument                            -> "ERROR <reason>\n"
//   line longer than 1024 bytes             -> "ERROR line too long\n"
//
// Invariants:
//   * No I/O, no threads, no global mutable state, no sleeping.  Every type
//     here is a plain value owned by one connection; use it from blocking code
//     (a fiber or a thread looping on read/write) or from a state machine
//     (select/epoll) alike.  Distinct objects may be used from distinct
//     threads concurrently; one object must not.
//   * Bounded memory per connection: a LineFramer never holds more than
//     max_line + 1 bytes (1025 by default) however the input arrives, and the
//     STREAM body is never materialised -- StreamCursor hands it out in
//     chunks of at most the size the caller asks for (or kStreamChunk).
//   * Works with input split at any byte boundary: the outcome of feeding a
//     byte sequence does not depend on how it is cut into pieces.
//   * Nothing here throws except std::bad_alloc from the few std::string
//     results (format_result, error_reply, Session's RESULT line).

#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <variant>

#include "common/line_framer.h"

namespace dumb {

// ---------------------------------------------------------------- limits ---

inline constexpr std::uint16_t kDefaultPort = 8090;
// Maximum request line length in bytes, excluding the terminating "\n" and an
// optional "\r" just before it.
using common::kMaxLine;  // 1024 bytes
inline constexpr std::uint32_t kMaxWaitMs = 60000;
inline constexpr std::uint32_t kMaxBurn = 10000;
inline constexpr std::uint64_t kMaxStream = 1073741824;  // 2^30 bytes
// Default (and largest) chunk StreamCursor::peek() hands out.
inline constexpr std::size_t kStreamChunk = 64 * 1024;

// --------------------------------------------------------------- replies ---
// Every reply ends in "\n".  These views point to static storage.

inline constexpr std::string_view kPong = "PONG\n";
inline constexpr std::string_view kDone = "DONE\n";
inline constexpr std::string_view kUnknownCommand = "UNKNOWN_COMMAND\n";
using common::kLineTooLong;  // "ERROR line too long\n"
using common::kServerBusy;   // "ERROR server busy\n"
// Sent, best effort, to a connection closed for sending nothing for
// --idle-timeout (docs/SERVERS.md).
inline constexpr std::string_view kIdleTimeout = "ERROR idle timeout\n";

// The reasons that follow "ERROR " in an error reply.  parse() only ever
// produces the first four; kReasonLineTooLong comes from the framer.
inline constexpr std::string_view kReasonMissingArgument = "missing argument";
inline constexpr std::string_view kReasonNotANumber = "not a number";
inline constexpr std::string_view kReasonOutOfRange = "out of range";
inline constexpr std::string_view kReasonUnexpectedArgument = "unexpected argument";
inline constexpr std::string_view kReasonLineTooLong = "line too long";

// "RESULT <value>\n", value in decimal.
std::string format_result(std::uint64_t value);
// "ERROR <reason>\n".
std::string error_reply(std::string_view reason);
// Same bytes as error_reply(reason), but as a view of static storage; only for
// the kReason* constants above (compared by content).  Empty for any other
// reason.
std::string_view static_error_reply(std::string_view reason) noexcept;

// --------------------------------------------------------------- framing ---
// The framer is the one both protocols use (apps/common/line_framer.h): a
// DUMB request is one line of at most kMaxLine bytes.

using common::Frame;
using common::LineFramer;

// --------------------------------------------------------------- parsing ---

struct Ping {};
struct Wait {
  std::uint32_t ms;
};
struct Burn {
  std::uint32_t n;
};
struct Stream {
  std::uint64_t n;
};
struct Unknown {};
struct Error {
  std::string_view reason;  // one of the kReason* constants (static storage)
};
using Request = std::variant<Ping, Wait, Burn, Stream, Unknown, Error>;

// Parses one request line as produced by LineFramer (no "\n", no final "\r").
// Strict grammar (see docs/PROTOCOL.md):
//   * The command word is everything up to the first space (or the whole
//     line).  Case-sensitive; anything other than PING, WAIT, BURN, STREAM --
//     including the empty word of an empty line or of a line starting with a
//     space -- is Unknown.
//   * PING must be the whole line; any following byte (even a lone trailing
//     space) gives Error{kReasonUnexpectedArgument}.
//   * For WAIT/BURN/STREAM the argument is everything after the first space,
//     to the end of the line.  Empty (no space, or nothing after it) gives
//     kReasonMissingArgument; "-" followed by one or more digits gives
//     kReasonOutOfRange (negative); anything else that is not one or more
//     ASCII digits (a sign, a second space, a trailing space, a tab, ...)
//     gives kReasonNotANumber; a value above the command's limit gives
//     kReasonOutOfRange.  Leading zeros are allowed.
Request parse(std::string_view line);

// ------------------------------------------------------------------- BURN ---

// Returns n(n+1)/2, computed by a non-tail recursion n levels deep whose every
// level owns a 256-byte array that it fills before recursing and
// reads after the recursive call returns (so the frame can be neither elided
// nor reused, and the recursion cannot be turned into a loop).  Meant to be
// stack-hungry: it runs on the caller's stack.
//
// Stack use per level, measured on x86-64 with measure_burn_stack(1000):
//   g++ 12 -O2 (and -O3):     272 bytes  (256 array + saved rbx + return address)
//   clang++ 14 -O2 (and -O3): 288 bytes  (256 + 8 pad + r14, rbx + return address)
//   -O0, either compiler:     336 bytes
//   ASan+UBSan: 432 (g++) / 480 (clang++) bytes;  TSan (clang++): 320 bytes
// So BURN 10000 needs about 2.7-2.9 MB of stack in an optimised build (plus
// the caller's own frames), and a fiber stack of S bytes supports roughly
// BURN (S - slack) / 288.
std::uint64_t burn(std::uint32_t n);

// Runs the same recursion as burn(depth) and returns the distance in bytes
// between the burn frame at the outermost level and the one `depth` levels
// down, i.e. ~depth * (bytes per level).  For tests and stack sizing.  (Under
// AddressSanitizer with detect_stack_use_after_return the arrays live on a
// fake stack and the figure is meaningless.)
std::size_t measure_burn_stack(std::uint32_t depth);

// ----------------------------------------------------------------- STREAM ---

// Produces the bytes of a STREAM <n> reply -- n bytes 'A' immediately
// followed by "DONE\n" (n + 5 bytes in all) -- in bounded chunks, so a server
// writes it with backpressure and never holds the whole body.
//
// Two ways to drain it:
//   * zero-copy: `auto v = c.peek(); k = write(fd, v); c.consume(k);`
//     peek() returns a view of static storage, so a partial write needs no
//     buffer of its own -- just consume() what was written and peek() again;
//   * copying: `std::size_t k = c.fill(buf);` copies the next bytes into a
//     caller buffer and advances.
class StreamCursor {
 public:
  explicit StreamCursor(std::uint64_t n) noexcept : total_(n + kDone.size()) {}

  // Bytes not yet consumed, "DONE\n" included.
  std::uint64_t remaining() const noexcept { return total_ - pos_; }
  bool done() const noexcept { return pos_ == total_; }

  // The next min(remaining(), max, kStreamChunk + 5) bytes at most, as a view
  // of static storage (valid forever).  Non-empty unless done() or max == 0.
  // Does not advance.
  std::string_view peek(std::size_t max = kStreamChunk) const noexcept;
  // Advances by k bytes; k must be <= remaining() (clamped if larger).
  void consume(std::size_t k) noexcept;
  // Copies the next min(out.size(), remaining()) bytes into out and advances
  // past them.  Returns the number of bytes copied (0 iff done() or out is
  // empty).
  std::size_t fill(std::span<char> out) noexcept;

 private:
  std::uint64_t total_;  // n + 5
  std::uint64_t pos_ = 0;
};

// ---------------------------------------------------------------- Session ---

// What a server must do next for one connection.
struct Action {
  enum class Kind : std::uint8_t {
    kReply,   // send `reply`
    kWait,    // sleep `wait_ms` milliseconds, then send kDone
    kStream,  // send the body of StreamCursor(stream_bytes)
  };
  Kind kind;
  std::string_view reply;          // Reply only
  std::uint32_t wait_ms = 0;       // Wait only
  std::uint64_t stream_bytes = 0;  // Stream only
};

// Framer + parser + reply formatting for one connection: turns received
// bytes into Actions, one per request line, in order.  Same calling
// convention as LineFramer::next():
//
//     std::string_view in(buf, n);
//     while (auto a = session.next(in)) {
//       switch (a->kind) {
//         case Action::Kind::kReply:  write_all(a->reply); break;
//         case Action::Kind::kWait:   sleep_ms(a->wait_ms); write_all(kDone); break;
//         case Action::Kind::kStream: { StreamCursor c(a->stream_bytes);
//                                      while (!c.done()) c.consume(write(c.peek())); }
//       }
//     }
//
// An event-driven server stops calling next() while an action is in progress
// (a timer pending, a stream or reply not fully written) and keeps the rest of
// `in`; that is what keeps replies in order and applies backpressure.
//
// BURN requests are computed inside next(), on the caller's stack (that is the
// point of BURN); they come back as Kind::kReply.  Action::reply is valid until
// the next call on this Session (often it points to static storage).
class Session {
 public:
  explicit Session(std::size_t max_line = kMaxLine) noexcept : framer_(max_line) {}

  std::optional<Action> next(std::string_view& in);

  const LineFramer& framer() const noexcept { return framer_; }

 private:
  LineFramer framer_;
  std::string scratch_;  // owns a RESULT line (or an unusual error line)
};

// Maps a parsed request to an action, like Session::next() does (a Burn is
// computed here, on the caller's stack).  `scratch` receives the bytes of a
// reply that has no static storage; Action::reply may point into it.
Action to_action(const Request& request, std::string& scratch);

}  // namespace dumb
