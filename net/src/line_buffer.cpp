// line_buffer.cpp: see line_buffer.h.
#include "line_buffer.h"

#include <algorithm>
#include <cstring>

namespace gort::net::detail {

LineBuffer::Scan LineBuffer::scan(std::size_t max_len, std::string* line) {
  const char* start = buf_.data() + begin_;
  std::size_t n = size();
  const void* nl = n > scanned_ ? std::memchr(start + scanned_, '\n', n - scanned_) : nullptr;
  if (nl == nullptr) {
    scanned_ = n;
    // Content so far is n bytes, or n - 1 if the last is a '\r' that may
    // belong to the line end still to come.
    std::size_t content = (n > 0 && start[n - 1] == '\r') ? n - 1 : n;
    return content > max_len ? Scan::kTooLong : Scan::kNeedMore;
  }
  std::size_t end = std::size_t(static_cast<const char*>(nl) - start);
  std::size_t content = (end > 0 && start[end - 1] == '\r') ? end - 1 : end;
  if (content > max_len) return Scan::kTooLong;
  line->assign(start, content);
  begin_ += end + 1;
  scanned_ = 0;
  if (begin_ == end_) begin_ = end_ = 0;
  return Scan::kLine;
}

char* LineBuffer::write_area(std::size_t want) {
  if (begin_ > 0 && buf_.size() - end_ < want) {
    // Slide the unconsumed bytes to the front before growing.
    std::memmove(buf_.data(), buf_.data() + begin_, size());
    end_ -= begin_;
    begin_ = 0;
  }
  if (buf_.size() - end_ < want) buf_.resize(std::max(end_ + want, 2 * buf_.size()));
  return buf_.data() + end_;
}

std::size_t LineBuffer::take(void* dst, std::size_t n) {
  n = std::min(n, size());
  if (n == 0) return 0;
  std::memcpy(dst, buf_.data() + begin_, n);
  begin_ += n;
  scanned_ = scanned_ > n ? scanned_ - n : 0;
  if (begin_ == end_) begin_ = end_ = 0;
  return n;
}

std::string LineBuffer::take_all() {
  std::string s(buf_.data() + begin_, size());
  begin_ = end_ = scanned_ = 0;
  return s;
}

}  // namespace gort::net::detail
