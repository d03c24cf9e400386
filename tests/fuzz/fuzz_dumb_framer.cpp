// tests/fuzz/fuzz_dumb_framer.cpp -- dumb::LineFramer and dumb::parse
// against a reference model, with the input split into random pieces.
//
// The model (reference_frames, reference_parse) is written from
// docs/PROTOCOL.md ("Framing", "Malformed requests") in the plainest way --
// whole input at once, no state -- so a difference is a bug in one or the
// other.  The same framer frames chat lines (apps/chat, with chat::kMaxLine),
// so this target covers chat framing too; fuzz_chat_room covers the relay.

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <variant>
#include <vector>

#include "dumb/protocol.h"
#include "reference_framing.h"
#include "split_input.h"

namespace {

using fuzz::ModelFrame;
using fuzz::reference_frames;

bool all_digits(std::string_view s) {
  if (s.empty()) return false;
  for (char c : s)
    if (c < '0' || c > '9') return false;
  return true;
}

// The digits' value, saturated at limit + 1 (so any number of digits works).
std::uint64_t value_capped(std::string_view digits, std::uint64_t limit) {
  std::uint64_t v = 0;
  for (char c : digits) {
    v = v * 10 + std::uint64_t(c - '0');
    if (v > limit) return limit + 1;
  }
  return v;
}

std::string reference_parse(std::string_view line) {
  std::size_t space = line.find(' ');
  std::string_view word = line.substr(0, space);
  if (word == "PING") return space == std::string_view::npos ? "PING" : "ERROR unexpected argument";
  std::uint64_t limit = word == "WAIT"     ? dumb::kMaxWaitMs
                        : word == "BURN"   ? dumb::kMaxBurn
                        : word == "STREAM" ? dumb::kMaxStream
                                           : 0;
  if (limit == 0) return "UNKNOWN";
  std::string_view arg = space == std::string_view::npos ? std::string_view() : line.substr(space + 1);
  if (arg.empty()) return "ERROR missing argument";
  if (arg[0] == '-' && all_digits(arg.substr(1))) return "ERROR out of range";
  if (!all_digits(arg)) return "ERROR not a number";
  std::uint64_t v = value_capped(arg, limit);
  if (v > limit) return "ERROR out of range";
  return std::string(word) + " " + std::to_string(v);
}

std::string describe(const dumb::Request& request) {
  if (std::holds_alternative<dumb::Ping>(request)) return "PING";
  if (auto* w = std::get_if<dumb::Wait>(&request)) return "WAIT " + std::to_string(w->ms);
  if (auto* b = std::get_if<dumb::Burn>(&request)) return "BURN " + std::to_string(b->n);
  if (auto* s = std::get_if<dumb::Stream>(&request)) return "STREAM " + std::to_string(s->n);
  if (std::holds_alternative<dumb::Unknown>(request)) return "UNKNOWN";
  return "ERROR " + std::string(std::get<dumb::Error>(request).reason);
}

void check(bool ok) {
  if (!ok) std::abort();  // libFuzzer records the input
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  fuzz::Cursor cursor(data, size);
  // Small limits reach the too-long paths with short inputs; the real one too.
  std::uint8_t limit_byte = cursor.take_byte();
  std::size_t max_line = limit_byte < 200 ? limit_byte % 16 : dumb::kMaxLine;
  auto sizes = fuzz::piece_sizes(cursor);
  std::string_view input = cursor.rest();

  dumb::LineFramer framer(max_line);
  std::vector<ModelFrame> got;
  for (std::string_view piece : fuzz::split(input, sizes)) {
    while (auto frame = framer.next(piece)) {
      bool too_long = frame->kind == dumb::Frame::Kind::kTooLong;
      got.push_back({too_long, too_long ? "" : std::string(frame->line)});
      check(too_long || frame->line.size() <= max_line);
    }
    check(piece.empty());  // next() drains its input
    check(framer.buffered() <= max_line + 1);
  }
  check(got == reference_frames(input, max_line));
  for (const ModelFrame& frame : got)
    if (!frame.too_long) check(describe(dumb::parse(frame.line)) == reference_parse(frame.line));
  return 0;
}
