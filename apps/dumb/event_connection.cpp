// dumb/event_connection.cpp -- see event_connection.h.

#include "dumb/event_connection.h"

#include <cerrno>

#include <unistd.h>

namespace dumb {

EventConnection::Interest EventConnection::interest() const noexcept {
  switch (state_) {
    case State::kIdle: return Interest::kRead;
    case State::kReplying:
    case State::kStreaming: return Interest::kWrite;
    case State::kWaiting:
    case State::kComputing: return Interest::kNone;
  }
  return Interest::kNone;
}

EventConnection::Io EventConnection::write_some(std::string_view bytes, std::size_t& written) {
  for (;;) {
    --budget_;
    ssize_t n = write(fd_, bytes.data(), bytes.size());
    if (n >= 0) {
      written = static_cast<std::size_t>(n);
      return Io::kDone;
    }
    if (errno == EINTR) continue;
    return errno == EAGAIN || errno == EWOULDBLOCK ? Io::kAgain : Io::kFailed;
  }
}

bool EventConnection::start(Clock::time_point now) {
  std::optional<Action> action;
  if (!burn_handoff_) {
    action = session_.next(in_);  // computes a BURN right here, on the loop's stack
  } else {
    auto frame = framer_.next(in_);
    if (!frame) return false;
    if (frame->kind == Frame::Kind::kTooLong) {
      action = Action{Action::Kind::kReply, kLineTooLong};
    } else {
      Request request = parse(frame->line);
      if (auto* burn = std::get_if<Burn>(&request)) {
        state_ = State::kComputing;
        burn_handoff_(burn->n);
        return true;
      }
      action = to_action(request, scratch_);
    }
  }
  if (!action) return false;
  switch (action->kind) {
    case Action::Kind::kReply:
      reply_ = action->reply;  // valid until the next session_ call: after it is written
      state_ = State::kReplying;
      break;
    case Action::Kind::kWait:
      wake_at_ = now + std::chrono::milliseconds(action->wait_ms);
      state_ = State::kWaiting;
      break;
    case Action::Kind::kStream:
      stream_ = StreamCursor(action->stream_bytes);
      state_ = State::kStreaming;
      break;
  }
  return true;
}

void EventConnection::complete_burn(std::string reply) {
  scratch_ = std::move(reply);
  reply_ = scratch_;
  state_ = State::kReplying;
}

bool EventConnection::drive(Clock::time_point now, bool stopping) {
  budget_ = kSyscallBudget;
  for (;;) {
    switch (state_) {
      case State::kComputing: return true;
      case State::kWaiting:
        if (now < wake_at_) return true;
        reply_ = kDone;
        state_ = State::kReplying;
        break;
      case State::kReplying: {
        if (budget_ <= 0) return true;
        std::size_t n = 0;
        Io io = write_some(reply_, n);
        if (io != Io::kDone) return io == Io::kAgain;
        reply_.remove_prefix(n);
        if (reply_.empty()) state_ = State::kIdle;
        break;
      }
      case State::kStreaming: {
        if (budget_ <= 0) return true;
        std::string_view chunk = stream_.peek();
        std::size_t n = 0;
        Io io = write_some(chunk, n);
        if (io != Io::kDone) return io == Io::kAgain;
        stream_.consume(n);
        if (stream_.done()) state_ = State::kIdle;
        break;
      }
      case State::kIdle:
        if (stopping) return false;  // the request in progress is finished; take no other
        if (in_.empty()) {
          if (eof_) return false;  // every complete request received has been answered
          if (budget_ <= 0) return true;
          --budget_;
          ssize_t n = read(fd_, in_buf_.data(), in_buf_.size());
          if (n < 0 && errno == EINTR) continue;
          if (n < 0) return errno == EAGAIN || errno == EWOULDBLOCK;
          if (n == 0) eof_ = true;
          in_ = std::string_view(in_buf_.data(), static_cast<std::size_t>(n));
          continue;
        }
        start(now);  // consumes input; may leave in_ empty with no request (a partial line)
        break;
    }
  }
}

}  // namespace dumb
