// fuzz_http_head: gort::debug::parse_request_head (net/src/http_head.cpp),
// which reads request heads from the network, against a reference model
// written another way (a regular expression over the request line). Also:
// bytes after a complete head never change the outcome.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <regex>
#include <string>
#include <string_view>

#include <gort/net/debug.h>

using gort::debug::kMaxRequestHead;
using gort::debug::parse_request_head;
using gort::debug::RequestHead;

namespace {

RequestHead model(std::string_view bytes) {
  RequestHead h;
  std::size_t end = bytes.find("\r\n\r\n");
  if (end == std::string_view::npos || end + 4 > kMaxRequestHead) {
    h.status = (end == std::string_view::npos && bytes.size() <= kMaxRequestHead) ? RequestHead::kIncomplete
                                                                                  : RequestHead::kTooLarge;
    return h;
  }
  std::string line(bytes.substr(0, bytes.find("\r\n")));
  static const std::regex request(R"(([^ ]+) (/[^ ]*) HTTP/1\.[^ ]*)");
  std::smatch m;
  bool control = false;
  for (unsigned char c : line) control |= c < 0x20 || c == 0x7f;
  if (control || !std::regex_match(line, m, request)) {
    h.status = RequestHead::kBad;
    return h;
  }
  h.status = RequestHead::kOk;
  h.method = m[1];
  std::string target = m[2];
  h.path = target.substr(0, target.find('?'));
  return h;
}

void check(const RequestHead& got, const RequestHead& want) {
  if (got.status != want.status || got.method != want.method || got.path != want.path) std::abort();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  std::string_view bytes(reinterpret_cast<const char*>(data), size);
  RequestHead got = parse_request_head(bytes);
  check(got, model(bytes));
  if (got.status == RequestHead::kOk) {
    std::string more(bytes);
    more += "GET /other HTTP/1.1\r\n\r\n";  // a pipelined second request changes nothing
    check(parse_request_head(more), got);
  }
  return 0;
}
