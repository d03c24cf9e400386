// dumb/event_connection.cpp -- see event_connection.h.

#include "dumb/event_connection.h"

#include <cerrno>

#include <unistd.h>

namespace dumb {

EventConnection::Interest EventConnection::interest() const noexcept {
  switch (state_) {
    case State::idle: return Interest::read;
    case State::replying:
    case State::streaming: return Interest::write;
    case State::waiting:
    case State::computing: return Interest::none;
  }
  return Interest::none;
}

EventConnection::Io EventConnection::write_some(std::string_view bytes, std::size_t& written) {
  for (;;) {
    --budget_;
    ssize_t n = write(fd_, bytes.data(), bytes.size());
    if (n >= 0) {
      written = static_cast<std::size_t>(n);
      return Io::done;
    }
    if (errno == EINTR) continue;
    return errno == EAGAIN || errno == EWOULDBLOCK ? Io::again : Io::failed;
  }
}

bool EventConnection::start(Clock::time_point now) {
  std::optional<Action> action;
  if (!burn_handoff_) {
    action = session_.next(in_);  // computes a BURN right here, on the loop's stack
  } else {
    auto frame = framer_.next(in_);
    if (!frame) return false;
    if (frame->kind == Frame::Kind::TooLong) {
      action = Action{Action::Kind::Reply, kLineTooLong};
    } else {
      Request request = parse(frame->line);
      if (auto* burn = std::get_if<Burn>(&request)) {
        state_ = State::computing;
        burn_handoff_(burn->n);
        return true;
      }
      action = to_action(request, scratch_);
    }
  }
  if (!action) return false;
  switch (action->kind) {
    case Action::Kind::Reply:
      reply_ = action->reply;  // valid until the next session_ call: after it is written
      state_ = State::replying;
      break;
    case Action::Kind::Wait:
      wake_at_ = now + std::chrono::milliseconds(action->wait_ms);
      state_ = State::waiting;
      break;
    case Action::Kind::Stream:
      stream_ = StreamCursor(action->stream_bytes);
      state_ = State::streaming;
      break;
  }
  return true;
}

void EventConnection::complete_burn(std::string reply) {
  scratch_ = std::move(reply);
  reply_ = scratch_;
  state_ = State::replying;
}

bool EventConnection::drive(Clock::time_point now, bool stopping) {
  budget_ = kSyscallBudget;
  for (;;) {
    switch (state_) {
      case State::computing:
        return true;
      case State::waiting:
        if (now < wake_at_) return true;
        reply_ = kDone;
        state_ = State::replying;
        break;
      case State::replying: {
        if (budget_ <= 0) return true;
        std::size_t n = 0;
        Io io = write_some(reply_, n);
        if (io != Io::done) return io == Io::again;
        reply_.remove_prefix(n);
        if (reply_.empty()) state_ = State::idle;
        break;
      }
      case State::streaming: {
        if (budget_ <= 0) return true;
        std::string_view chunk = stream_.peek();
        std::size_t n = 0;
        Io io = write_some(chunk, n);
        if (io != Io::done) return io == Io::again;
        stream_.consume(n);
        if (stream_.done()) state_ = State::idle;
        break;
      }
      case State::idle:
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
