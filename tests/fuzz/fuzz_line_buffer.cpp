// tests/fuzz/fuzz_line_buffer.cpp -- gort::net's LineBuffer (the framing
// behind Conn::read_line) against a reference model, with the input arriving
// in random pieces as reads would deliver it.
//
// Model (tcp.h, read_line): lines end at "\n", one "\r" before it dropped; a
// line whose content exceeds max_len is kTooLong as soon as that is certain,
// and nothing of it is consumed; an unterminated rest stays buffered.

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "line_buffer.h"
#include "split_input.h"

namespace {

using gort::net::detail::LineBuffer;

void check(bool ok) {
  if (!ok) std::abort();
}

struct Model {
  std::vector<std::string> lines;  // the lines before a too-long one (or all)
  bool too_long = false;
  std::size_t rest_at = 0;  // offset of the first byte not consumed
};

Model reference(std::string_view input, std::size_t max_len) {
  Model m;
  for (;;) {
    std::string_view rest = input.substr(m.rest_at);
    std::size_t nl = rest.find('\n');
    std::string_view line = rest.substr(0, nl);
    std::size_t content = line.size() - (!line.empty() && line.back() == '\r' ? 1 : 0);
    if (content > max_len) {
      m.too_long = true;
      return m;
    }
    if (nl == std::string_view::npos) return m;
    m.lines.emplace_back(line.substr(0, content));
    m.rest_at += nl + 1;
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  fuzz::Cursor cursor(data, size);
  std::uint8_t limit_byte = cursor.take_byte();
  std::size_t max_len = limit_byte < 200 ? limit_byte % 16 : 64 * 1024;
  auto sizes = fuzz::piece_sizes(cursor);
  std::string_view input = cursor.rest();

  LineBuffer buffer;
  std::vector<std::string> got;
  std::size_t fed = 0, consumed = 0;
  bool too_long = false;
  for (std::string_view piece : fuzz::split(input, sizes)) {
    std::memcpy(buffer.write_area(piece.size()), piece.data(), piece.size());
    buffer.commit(piece.size());
    fed += piece.size();
    std::string line;
    LineBuffer::Scan scan;
    while ((scan = buffer.scan(max_len, &line)) == LineBuffer::Scan::kLine) {
      consumed += line.size();
      got.push_back(line);
    }
    check(buffer.size() <= fed);
    if (scan == LineBuffer::Scan::kTooLong) {
      too_long = true;
      break;
    }
  }
  Model model = reference(input, max_len);
  check(got == model.lines);
  check(too_long == model.too_long);
  // What stays buffered is exactly the unconsumed input fed so far.
  check(buffer.take_all() == input.substr(model.rest_at, fed - model.rest_at));
  (void)consumed;
  return 0;
}
