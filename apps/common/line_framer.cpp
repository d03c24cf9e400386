// common/line_framer.cpp -- see line_framer.h.

#include "common/line_framer.h"

#include <algorithm>

namespace common {

std::optional<Frame> LineFramer::next(std::string_view& in) {
  if (reset_pending_) {  // the previous frame was handed out from buf_
    buf_.clear();
    reset_pending_ = false;
  }
  while (!in.empty()) {
    if (discarding_) {
      const std::size_t nl = in.find('\n');
      if (nl == std::string_view::npos) {
        in = {};
        return std::nullopt;
      }
      in.remove_prefix(nl + 1);
      discarding_ = false;
      continue;
    }

    // We may hold at most max_line_ + 1 bytes; the byte after that must be
    // the "\n", so looking at room + 1 bytes is enough to decide.
    const std::size_t room = max_line_ + 1 - buf_.size();
    const std::size_t scan = std::min(in.size(), room + 1);
    const std::size_t nl = in.substr(0, scan).find('\n');

    if (nl != std::string_view::npos) {
      std::string_view line = in.substr(0, nl);
      in.remove_prefix(nl + 1);
      if (!buf_.empty()) {
        buf_.append(line);  // fits: nl <= room
        line = buf_;
        reset_pending_ = true;
      }
      if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
      if (line.size() > max_line_) {
        // max_line_ + 1 bytes, the last not "\r"; its "\n" is already eaten.
        if (reset_pending_) {
          buf_.clear();
          reset_pending_ = false;
        }
        return Frame{Frame::Kind::kTooLong, {}};
      }
      return Frame{Frame::Kind::kLine, line};
    }

    if (in.size() <= room) {
      // The whole input is the (still incomplete) line: keep it.
      if (buf_.capacity() < max_line_ + 1) buf_.reserve(max_line_ + 1);
      buf_.append(in);
      in = {};
      // Exactly max_line_ + 1 bytes can only still be a good line if the last
      // one is the "\r" of a "\r\n".
      if (buf_.size() == max_line_ + 1 && buf_.back() != '\r') {
        buf_.clear();
        discarding_ = true;
        return Frame{Frame::Kind::kTooLong, {}};
      }
      return std::nullopt;
    }

    // room + 1 bytes without a "\n": overlong.  Skip what we scanned; the
    // discarding state eats the rest of the line on this or later calls.
    in.remove_prefix(scan);
    buf_.clear();
    discarding_ = true;
    return Frame{Frame::Kind::kTooLong, {}};
  }
  return std::nullopt;
}

}  // namespace common
