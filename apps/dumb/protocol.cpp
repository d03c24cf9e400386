// dumb/protocol.cpp -- see protocol.h and docs/PROTOCOL.md.

#include "dumb/protocol.h"

#include <algorithm>
#include <array>
#include <charconv>
#include <cstring>
#include <system_error>

namespace dumb {

// --------------------------------------------------------------- replies ---

std::string format_result(std::uint64_t value) {
  char digits[24];
  auto [end, ec] = std::to_chars(std::begin(digits), std::end(digits), value);
  (void)ec;  // 24 chars always hold a uint64_t
  std::string out;
  out.reserve(7 + static_cast<std::size_t>(end - digits) + 1);
  out.append("RESULT ");
  out.append(digits, end);
  out.push_back('\n');
  return out;
}

std::string error_reply(std::string_view reason) {
  std::string out;
  out.reserve(6 + reason.size() + 1);
  out.append("ERROR ");
  out.append(reason);
  out.push_back('\n');
  return out;
}

std::string_view static_error_reply(std::string_view reason) noexcept {
  static constexpr std::array<std::pair<std::string_view, std::string_view>, 5> kTable{{
      {kReasonMissingArgument, "ERROR missing argument\n"},
      {kReasonNotANumber, "ERROR not a number\n"},
      {kReasonOutOfRange, "ERROR out of range\n"},
      {kReasonUnexpectedArgument, "ERROR unexpected argument\n"},
      {kReasonLineTooLong, kLineTooLong},
  }};
  for (const auto& [r, line] : kTable) {
    if (r == reason) return line;
  }
  return {};
}

// --------------------------------------------------------------- parsing ---

namespace {

struct Number {
  std::uint64_t value = 0;
  std::string_view error;  // empty on success
};

bool all_digits(std::string_view s) {
  return std::all_of(s.begin(), s.end(), [](char c) { return c >= '0' && c <= '9'; });
}

Number parse_number(std::string_view arg, std::uint64_t limit) {
  if (arg.empty()) return {0, kReasonMissingArgument};
  const bool negative = arg.front() == '-';
  std::string_view digits = negative ? arg.substr(1) : arg;
  if (digits.empty() || !all_digits(digits)) return {0, kReasonNotANumber};
  if (negative) return {0, kReasonOutOfRange};
  std::uint64_t v = 0;
  for (char c : digits) {
    v = v * 10 + static_cast<std::uint64_t>(c - '0');  // v <= limit < 2^32 here
    if (v > limit) return {0, kReasonOutOfRange};
  }
  return {v, {}};
}

}  // namespace

Request parse(std::string_view line) {
  const std::size_t sp = line.find(' ');
  const std::string_view cmd = line.substr(0, sp);
  const bool has_arg = sp != std::string_view::npos;
  const std::string_view arg = has_arg ? line.substr(sp + 1) : std::string_view{};

  if (cmd == "PING") {
    if (has_arg) return Error{kReasonUnexpectedArgument};
    return Ping{};
  }
  if (cmd == "WAIT") {
    const Number n = parse_number(arg, kMaxWaitMs);
    if (!n.error.empty()) return Error{n.error};
    return Wait{static_cast<std::uint32_t>(n.value)};
  }
  if (cmd == "BURN") {
    const Number n = parse_number(arg, kMaxBurn);
    if (!n.error.empty()) return Error{n.error};
    return Burn{static_cast<std::uint32_t>(n.value)};
  }
  if (cmd == "STREAM") {
    const Number n = parse_number(arg, kMaxStream);
    if (!n.error.empty()) return Error{n.error};
    return Stream{n.value};
  }
  return Unknown{};
}

// ------------------------------------------------------------------- BURN ---

namespace detail {

struct BurnProbe {
  std::uintptr_t top = 0;     // address of the outermost level's array
  std::uintptr_t bottom = 0;  // address of the innermost level's array
};

// External linkage and no IPA (GCC's noipa): the compiler may neither inline
// it, nor clone/specialise it (so burn() and measure_burn_stack() run the very
// same code), nor change its frame from what its callers see.
#if defined(__clang__)
[[gnu::noinline]]
#else
[[gnu::noipa]]
#endif
std::uint64_t
burn_level(std::uint32_t n, BurnProbe* probe);

std::uint64_t burn_level(std::uint32_t n, BurnProbe* probe) {
  // 256 bytes the compiler must materialise in this frame: all of them are
  // written (touching the stack for real) before the recursive call and one
  // is read back after it, so the frame is live across the call -- no tail
  // call, no frame reuse, no turning the recursion into a loop.  The fill is
  // a memset (wide stores, like Go zeroing its `var frame [256]byte`), and
  // the empty asm that takes the array's address and clobbers memory makes
  // the compiler keep every byte of it: BURN is meant to eat stack, not CPU
  // (a byte-at-a-time volatile fill would cost many times Go's zeroing).
  unsigned char frame[256];
  std::memset(frame, static_cast<int>(n & 0xff), sizeof frame);
  asm volatile("" : : "r"(frame) : "memory");
  if (probe != nullptr) {
    const auto addr = reinterpret_cast<std::uintptr_t>(&frame[0]);
    if (probe->top == 0) probe->top = addr;
    probe->bottom = addr;
  }
  const std::uint64_t below = n == 0 ? 0 : burn_level(n - 1, probe);
  asm volatile("" : : "r"(frame) : "memory");
  const std::size_t k = n % sizeof frame;
  // Always 0, but only known at run time: frame[k] == n mod 256.
  const unsigned check = frame[k] ^ static_cast<unsigned char>(n);
  return below + n + check;
}

}  // namespace detail

std::uint64_t burn(std::uint32_t n) { return detail::burn_level(n, nullptr); }

std::size_t measure_burn_stack(std::uint32_t depth) {
  detail::BurnProbe probe;
  (void)detail::burn_level(depth, &probe);
  return probe.top >= probe.bottom ? probe.top - probe.bottom : probe.bottom - probe.top;
}

// ----------------------------------------------------------------- STREAM ---

namespace {

constexpr std::size_t kStreamBytesSize = kStreamChunk + kDone.size();

// kStreamChunk bytes 'A' then "DONE\n": every remaining tail of any STREAM
// body up to kStreamBytesSize bytes long is a suffix of this array, and any
// longer remainder starts with kStreamChunk 'A's.
constexpr std::array<char, kStreamBytesSize> make_stream_bytes() {
  std::array<char, kStreamBytesSize> a{};
  for (std::size_t i = 0; i < kStreamChunk; ++i) a[i] = 'A';
  for (std::size_t i = 0; i < kDone.size(); ++i) a[kStreamChunk + i] = kDone[i];
  return a;
}

constinit const std::array<char, kStreamBytesSize> kStreamBytes = make_stream_bytes();

}  // namespace

std::string_view StreamCursor::peek(std::size_t max) const noexcept {
  const std::uint64_t rem = remaining();
  if (rem == 0 || max == 0) return {};
  if (rem <= kStreamBytesSize) {
    const std::size_t r = static_cast<std::size_t>(rem);
    return {kStreamBytes.data() + (kStreamBytesSize - r), std::min(r, max)};
  }
  return {kStreamBytes.data(), std::min(max, kStreamChunk)};
}

void StreamCursor::consume(std::size_t k) noexcept { pos_ += std::min<std::uint64_t>(k, remaining()); }

std::size_t StreamCursor::fill(std::span<char> out) noexcept {
  std::size_t written = 0;
  while (written < out.size() && !done()) {
    const std::string_view v = peek(out.size() - written);
    std::memcpy(out.data() + written, v.data(), v.size());
    written += v.size();
    consume(v.size());
  }
  return written;
}

// ---------------------------------------------------------------- Session ---

Action to_action(const Request& request, std::string& scratch) {
  struct Visitor {
    std::string& scratch;
    Action operator()(const Ping&) const { return {Action::Kind::kReply, kPong}; }
    Action operator()(const Wait& w) const { return {Action::Kind::kWait, {}, w.ms}; }
    Action operator()(const Burn& b) const {
      scratch = format_result(burn(b.n));
      return {Action::Kind::kReply, scratch};
    }
    Action operator()(const Stream& s) const { return {Action::Kind::kStream, {}, 0, s.n}; }
    Action operator()(const Unknown&) const { return {Action::Kind::kReply, kUnknownCommand}; }
    Action operator()(const Error& e) const {
      std::string_view line = static_error_reply(e.reason);
      if (line.empty()) {
        scratch = error_reply(e.reason);
        line = scratch;
      }
      return {Action::Kind::kReply, line};
    }
  };
  return std::visit(Visitor{scratch}, request);
}

std::optional<Action> Session::next(std::string_view& in) {
  const std::optional<Frame> f = framer_.next(in);
  if (!f) return std::nullopt;
  if (f->kind == Frame::Kind::kTooLong) return Action{Action::Kind::kReply, kLineTooLong};
  return to_action(parse(f->line), scratch_);
}

}  // namespace dumb
