// http_head.cpp: gort::debug::parse_request_head (debug.h), the request
// head parser of the debug endpoint. No I/O and no runtime: the fuzz target
// (tests/fuzz/fuzz_http_head.cpp) compiles this file alone.

#include <gort/net/debug.h>

namespace gort::debug {

RequestHead parse_request_head(std::string_view bytes) {
  RequestHead head;
  std::size_t end = bytes.find("\r\n\r\n");
  if (end == std::string_view::npos) {
    head.status = bytes.size() > kMaxRequestHead ? RequestHead::kTooLarge : RequestHead::kIncomplete;
    return head;
  }
  if (end + 4 > kMaxRequestHead) {
    head.status = RequestHead::kTooLarge;
    return head;
  }
  std::string_view line = bytes.substr(0, bytes.find("\r\n"));
  std::size_t sp1 = line.find(' ');
  std::size_t sp2 = sp1 == std::string_view::npos ? sp1 : line.find(' ', sp1 + 1);
  if (sp1 == 0 || sp2 == std::string_view::npos || line.find(' ', sp2 + 1) != std::string_view::npos ||
      line.substr(sp2 + 1).rfind("HTTP/1.", 0) != 0) {
    head.status = RequestHead::kBad;
    return head;
  }
  std::string_view target = line.substr(sp1 + 1, sp2 - sp1 - 1);
  if (target.empty() || target[0] != '/') {
    head.status = RequestHead::kBad;
    return head;
  }
  for (char c : line)
    if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) {
      head.status = RequestHead::kBad;
      return head;
    }
  head.method = std::string(line.substr(0, sp1));
  head.path = std::string(target.substr(0, target.find('?')));
  head.status = RequestHead::kOk;
  return head;
}

}  // namespace gort::debug
