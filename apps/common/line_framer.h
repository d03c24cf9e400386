// common/line_framer.h -- line framing for the line-based protocols of the
// servers (DUMB and chat), and the error lines both send.
//
// No I/O, no threads, no global state: a LineFramer is a plain value owned
// by one connection, used from blocking code or a state machine alike, and
// holds at most max_line + 1 bytes however the input arrives (the input may
// be split at any byte boundary). docs/PROTOCOL.md ("Framing") is the
// normative description.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace common {

// The longest line either protocol takes (docs/PROTOCOL.md).
inline constexpr std::size_t kMaxLine = 1024;

// The reply to an overlong line, in both protocols.
inline constexpr std::string_view kLineTooLong = "ERROR line too long\n";
// Sent, best effort, to a connection the server accepts only to close it:
// it is out of descriptors or at --max-connections (docs/SERVERS.md).
inline constexpr std::string_view kServerBusy = "ERROR server busy\n";

// One framing event.
struct Frame {
  enum class Kind : std::uint8_t {
    kLine,     // a complete request line; `line` excludes "\n" and a final "\r"
    kTooLong,  // a line exceeded max_line; reply kLineTooLong.  `line` is empty.
  };
  Kind kind;
  std::string_view line;
};

// Incremental line framer with a hard bound on memory.
//
// API: the caller owns its input buffer and hands the framer a view of the
// unprocessed bytes; next() consumes bytes from the FRONT of that view (it
// advances `in`) and stops as soon as one frame is complete:
//
//     std::string_view in(buf, n);              // bytes just read
//     while (auto f = framer.next(in)) handle(*f);
//     // here `in` is empty: a trailing partial line is held by the framer
//
// next() returns std::nullopt only once `in` is empty, so that loop always
// drains the input.  A server that must stop between requests (to apply
// backpressure while a STREAM is being written, say) simply stops calling
// next() and keeps the rest of `in` for later: nothing is ever buffered on the
// caller's behalf beyond one partial line.
//
// Rules:
//   * A line ends at "\n".  One "\r" immediately before the "\n" is removed.
//   * A line whose length (without "\n" and that final "\r") is at most
//     max_line is delivered as Kind::kLine -- including the empty line.
//   * Otherwise one Kind::kTooLong event is produced for that line, as soon as
//     the framer can tell (it does not wait for the "\n"), and every byte up
//     to and including the line's "\n" is then discarded.  Framing resumes
//     with the next byte after that "\n".
//   * A trailing partial line (no "\n" yet) is held until more input arrives;
//     at end of stream it is simply never delivered.
//
// Frame::line points either into the caller's input or into the framer's own
// buffer; it is valid until the next call on this framer or until the
// caller's input bytes are modified or freed, whichever comes first.
//
// Memory: at most max_line + 1 bytes are held (a line of max_line bytes plus
// a "\r" whose "\n" has not arrived yet); the buffer is allocated on first
// use only (many short lines arrive whole and are never copied).
class LineFramer {
 public:
  explicit LineFramer(std::size_t max_line = kMaxLine) noexcept : max_line_(max_line) {}

  std::optional<Frame> next(std::string_view& in);

  // Bytes of a partial line currently held (0 <= buffered() <= max_line + 1).
  std::size_t buffered() const noexcept { return reset_pending_ ? 0 : buf_.size(); }
  // True while the rest of an overlong line is being skipped.
  bool discarding() const noexcept { return discarding_; }
  // True if the stream so far does not end on a line boundary.
  bool mid_line() const noexcept { return discarding_ || buffered() != 0; }
  std::size_t max_line() const noexcept { return max_line_; }

 private:
  std::size_t max_line_;
  std::string buf_;             // partial line, never more than max_line_ + 1 bytes
  bool discarding_ = false;     // skipping the tail of an overlong line
  bool reset_pending_ = false;  // buf_ was handed out as a Frame; clear it on next call
};

}  // namespace common
