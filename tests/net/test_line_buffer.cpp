// LineBuffer: line splitting with the input cut at every byte boundary
// (Seastar's and tokio-util's habit for protocol parsers). No I/O.
#include <gtest/gtest.h>

#include <cstring>
#include <string>
#include <vector>

#include "line_buffer.h"

using gort::net::detail::LineBuffer;

namespace {

struct Outcome {
  std::vector<std::string> lines;
  bool too_long = false;
  std::string rest;  // buffered when the input ended
};

// Feeds `input` in pieces of `chunk` bytes, scanning after each.
Outcome feed(const std::string& input, std::size_t chunk, std::size_t max_len) {
  LineBuffer b;
  Outcome out;
  std::string line;
  for (std::size_t pos = 0; pos < input.size() && !out.too_long; pos += chunk) {
    std::size_t n = std::min(chunk, input.size() - pos);
    std::memcpy(b.write_area(n), input.data() + pos, n);
    b.commit(n);
    for (;;) {
      auto s = b.scan(max_len, &line);
      if (s == LineBuffer::Scan::kLine) {
        out.lines.push_back(line);
        continue;
      }
      if (s == LineBuffer::Scan::kTooLong) out.too_long = true;
      break;
    }
  }
  out.rest = b.take_all();
  return out;
}

}  // namespace

TEST(LineBuffer, SplitAtEveryBoundary) {
  const std::string input = "GET /\r\nHost: x\n\nlast line\r\npartial";
  for (std::size_t chunk = 1; chunk <= input.size(); ++chunk) {
    Outcome o = feed(input, chunk, 64);
    ASSERT_FALSE(o.too_long) << "chunk " << chunk;
    EXPECT_EQ(o.lines, (std::vector<std::string>{"GET /", "Host: x", "", "last line"})) << "chunk " << chunk;
    EXPECT_EQ(o.rest, "partial") << "chunk " << chunk;
  }
}

TEST(LineBuffer, ExactlyMaxLenFitsAtEveryBoundary) {
  const std::string line(16, 'a');
  for (const std::string& end : {std::string("\n"), std::string("\r\n")}) {
    const std::string input = line + end + "b\n";
    for (std::size_t chunk = 1; chunk <= input.size(); ++chunk) {
      Outcome o = feed(input, chunk, 16);
      EXPECT_FALSE(o.too_long) << "chunk " << chunk;
      EXPECT_EQ(o.lines, (std::vector<std::string>{line, "b"})) << "chunk " << chunk;
    }
  }
}

TEST(LineBuffer, OneOverMaxLenIsTooLongAndNothingIsLost) {
  const std::string input = std::string(17, 'a') + "\nnext\n";
  for (std::size_t chunk = 1; chunk <= input.size(); ++chunk) {
    Outcome o = feed(input, chunk, 16);
    EXPECT_TRUE(o.too_long) << "chunk " << chunk;
    EXPECT_TRUE(o.lines.empty()) << "chunk " << chunk;
    // Nothing consumed or truncated: every byte fed so far is still there.
    EXPECT_EQ(o.rest, input.substr(0, o.rest.size())) << "chunk " << chunk;
    EXPECT_GE(o.rest.size(), 17u) << "chunk " << chunk;
  }
}

TEST(LineBuffer, TakeServesBufferedBytesInOrder) {
  LineBuffer b;
  std::memcpy(b.write_area(10), "one\ntwo\nth", 10);
  b.commit(10);
  std::string line;
  ASSERT_EQ(b.scan(100, &line), LineBuffer::Scan::kLine);
  EXPECT_EQ(line, "one");
  char buf[3];
  EXPECT_EQ(b.take(buf, 3), 3u);
  EXPECT_EQ(std::string(buf, 3), "two");
  ASSERT_EQ(b.scan(100, &line), LineBuffer::Scan::kLine);
  EXPECT_EQ(line, "");
  EXPECT_EQ(b.take_all(), "th");
}
