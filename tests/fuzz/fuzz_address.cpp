// tests/fuzz/fuzz_address.cpp -- gort::net's address parsing
// (split_host_port, Address::parse) on arbitrary strings: no crash, no
// undefined behaviour, and what parses round-trips -- an Address printed
// with to_string() parses back to itself, and split_host_port agrees with
// Address::parse on the port.

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include <gort/net/address.h>

namespace {
void check(bool ok) {
  if (!ok) std::abort();
}
}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  std::string_view text(reinterpret_cast<const char*>(data), size);
  auto split = gort::net::split_host_port(text);
  auto address = gort::net::Address::parse(text);
  if (!split) check(!address);
  if (address) {
    check(split && split->port == address->port());
    auto again = gort::net::Address::parse(address->to_string());
    check(again && *again == *address);
    check(again->to_string() == address->to_string());
  }
  if (!split) check(!split.error().message().empty());
  return 0;
}
