// dumb/event_connection.h -- one DUMB connection as a nonblocking state
// machine, for the event-driven servers (select, epoll, epoll per worker,
// reactor).
//
// The loop calls drive() whenever the connection may make progress (its fd
// is ready as interest() asked, or its deadline() has passed); drive() does
// all it can without blocking and reports whether the connection is still
// open.  States, and what the connection waits for in each:
//
//   idle       read: no request in progress; takes the next buffered request
//              or reads more (nothing is read while a request is pending:
//              that is the backpressure)
//   replying   write: the rest of a reply line
//   streaming  write: the rest of a STREAM body, 64 KiB per write at most
//   waiting    deadline: a WAIT timer; then replying "DONE\n"
//   computing  an external completion: a BURN handed to a helper (reactor
//              only; set_burn_handoff) until complete_burn()
//
// Invariants: one request is in progress at a time (replies stay in order);
// a connection holds its 16 KiB read buffer, the Session's partial line and
// one reply -- never a whole STREAM body; drive() makes at most
// kSyscallBudget read/write calls, so one greedy client cannot monopolise a
// loop (what remains is picked up again by level-triggered readiness).

#pragma once

#include <array>
#include <cstdint>
#include <functional>
#include <string>
#include <string_view>

#include "dumb/protocol.h"
#include "dumb/timer_heap.h"

namespace dumb {

class EventConnection {
 public:
  enum class State : std::uint8_t { kIdle, kReplying, kStreaming, kWaiting, kComputing };
  enum class Interest : std::uint8_t { kRead, kWrite, kNone };
  // Called with n when a BURN n should run elsewhere; the owner later calls
  // complete_burn() with the reply.
  using BurnHandoff = std::function<void(std::uint32_t n)>;

  static constexpr int kSyscallBudget = 32;

  explicit EventConnection(int fd) noexcept : fd_(fd) {}
  EventConnection(const EventConnection&) = delete;
  EventConnection& operator=(const EventConnection&) = delete;

  void set_burn_handoff(BurnHandoff handoff) { burn_handoff_ = std::move(handoff); }

  // Makes all the progress possible now.  `stopping`: do not start another
  // request.  Returns false when the connection is finished (EOF after the
  // last reply, an I/O error, or stopping between requests); the caller
  // closes the fd.
  bool drive(Clock::time_point now, bool stopping);
  // Ends the `computing` state with `reply`; call drive() next.
  void complete_burn(std::string reply);

  int fd() const noexcept { return fd_; }
  State state() const noexcept { return state_; }
  Interest interest() const noexcept;
  Clock::time_point deadline() const noexcept { return wake_at_; }  // in state `waiting`

 private:
  bool start(Clock::time_point now);  // takes the next buffered request; false if none
  enum class Io : std::uint8_t { kDone, kAgain, kFailed };
  Io write_some(std::string_view bytes, std::size_t& written);

  int fd_;
  State state_ = State::kIdle;
  Session session_;                 // framing + parsing; BURN inline unless handed off
  LineFramer framer_;               // used instead of session_ when BURN is handed off
  std::string scratch_;             // owns a RESULT line
  std::array<char, 16384> in_buf_;  // bytes read from the socket
  std::string_view in_;             // the part of in_buf_ not yet framed
  std::string_view reply_;          // replying: unwritten rest of the reply
  StreamCursor stream_{0};          // streaming: the body's position
  Clock::time_point wake_at_{};     // waiting: when to reply DONE
  bool eof_ = false;                // the peer half-closed: finish what is buffered, then close
  int budget_ = 0;                  // syscalls left in this drive()
  BurnHandoff burn_handoff_;        // empty: BURN runs inline, inside session_.next()
};

}  // namespace dumb
