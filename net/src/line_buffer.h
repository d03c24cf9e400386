// line_buffer.h: the bytes a Conn has read ahead, and the search for line
// ends in them. No I/O here (tests feed it input split at every byte).
//
// Lines end with "\n"; a "\r" just before it is dropped too. scan() looks
// only at bytes it has not examined before, so a long line arriving in
// small pieces costs linear time.
#pragma once

#include <cstddef>
#include <string>
#include <vector>

namespace gort::net::detail {

class LineBuffer {
 public:
  enum class Scan {
    kLine,      // *line holds the next line; it and its end were consumed
    kNeedMore,  // no complete line yet, and it may still fit
    kTooLong,   // the line's content exceeds max_len; nothing consumed
  };
  Scan scan(std::size_t max_len, std::string* line);

  // Room for at least `want` more bytes at the end; then commit what was
  // stored there.
  char* write_area(std::size_t want);
  std::size_t write_room() const { return buf_.size() - end_; }
  void commit(std::size_t n) { end_ += n; }

  std::size_t size() const { return end_ - begin_; }
  // Moves up to n buffered bytes to dst; returns how many.
  std::size_t take(void* dst, std::size_t n);
  // Everything buffered, consumed (the unterminated last line at EOF).
  std::string take_all();

 private:
  std::vector<char> buf_;
  std::size_t begin_ = 0;    // first unconsumed byte
  std::size_t end_ = 0;      // one past the last buffered byte
  std::size_t scanned_ = 0;  // bytes from begin_ known to hold no '\n'
};

}  // namespace gort::net::detail
