// tests/fuzz/split_input.h -- how the fuzz targets turn libFuzzer's bytes
// into a test case: a few leading bytes choose the parameters (a line limit,
// the sizes of the pieces the input arrives in), the rest is the input as a
// peer would send it.  So the fuzzer explores splits and contents together,
// and a crash reproduces from its one file.

#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <string_view>
#include <vector>

namespace fuzz {

class Cursor {
 public:
  Cursor(const std::uint8_t* data, std::size_t size) : bytes_(reinterpret_cast<const char*>(data), size) {}
  // One parameter byte (0 once the input is used up).
  std::uint8_t take_byte() {
    if (bytes_.empty()) return 0;
    auto b = static_cast<std::uint8_t>(bytes_.front());
    bytes_.remove_prefix(1);
    return b;
  }
  std::string_view rest() const { return bytes_; }

 private:
  std::string_view bytes_;
};

// Cuts `input` into pieces whose sizes cycle through `sizes` (each >= 1):
// the reads a server might see for these bytes.
inline std::vector<std::string_view> split(std::string_view input, const std::vector<std::size_t>& sizes) {
  std::vector<std::string_view> pieces;
  for (std::size_t i = 0; !input.empty(); ++i) {
    std::size_t n = std::min(input.size(), std::max<std::size_t>(1, sizes[i % sizes.size()]));
    pieces.push_back(input.substr(0, n));
    input.remove_prefix(n);
  }
  return pieces;
}

// Piece sizes from up to four parameter bytes: small ones (byte by byte, a
// few bytes) as often as large ones.
inline std::vector<std::size_t> piece_sizes(Cursor& cursor) {
  std::vector<std::size_t> sizes;
  int count = 1 + cursor.take_byte() % 4;
  for (int i = 0; i < count; ++i) {
    std::uint8_t b = cursor.take_byte();
    sizes.push_back(b < 128 ? 1 + b % 8 : 1 + std::size_t(b) * 16);
  }
  return sizes;
}

}  // namespace fuzz
