// tests/fuzz/reference_framing.h -- the DUMB/chat framing rules of
// docs/PROTOCOL.md ("Framing") written the plainest way -- the whole input at
// once, no state -- as the model dumb::LineFramer is checked against.

#pragma once

#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

namespace fuzz {

struct ModelFrame {
  bool too_long;
  std::string line;
  bool operator==(const ModelFrame&) const = default;
};

// Framing rules: a line ends at "\n", one "\r" before it is dropped; a
// line over max_line is one TooLong, reported even before its "\n" comes,
// and everything up to its "\n" is skipped; a partial last line is held.
inline std::vector<ModelFrame> reference_frames(std::string_view input, std::size_t max_line) {
  std::vector<ModelFrame> frames;
  for (;;) {
    std::size_t nl = input.find('\n');
    std::string_view line = input.substr(0, nl);  // the whole rest if no "\n"
    bool complete = nl != std::string_view::npos;
    std::size_t content = line.size();
    if (complete && content > 0 && line.back() == '\r') --content;
    // Without its "\n" yet, a final "\r" may still be the CR of a CRLF.
    if (!complete && content > 0 && line.back() == '\r') --content;
    if (content > max_line) {
      frames.push_back({true, ""});
    } else if (complete) {
      frames.push_back({false, std::string(line.substr(0, content))});
    }
    if (!complete) return frames;
    input.remove_prefix(nl + 1);
  }
}

}  // namespace fuzz
