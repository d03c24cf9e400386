// Tests of the DUMB protocol module (apps/dumb/protocol.h).

#include <dumb/protocol.h>

#include <gtest/gtest.h>

#include <cstdint>
#include <cstdio>
#include <cstring>
#include <random>
#include <string>
#include <string_view>
#include <vector>

#if GORT_SANITIZER_BUILD
#define DUMB_TEST_SANITIZED 1
#endif

namespace {

using dumb::Action;
using dumb::Frame;
using dumb::LineFramer;
using dumb::Request;
using dumb::Session;
using dumb::StreamCursor;

// ------------------------------------------------------------- helpers ---

std::string describe(const Request& r) {
  struct V {
    std::string operator()(const dumb::Ping&) const { return "PING"; }
    std::string operator()(const dumb::Wait& w) const { return "WAIT " + std::to_string(w.ms); }
    std::string operator()(const dumb::Burn& b) const { return "BURN " + std::to_string(b.n); }
    std::string operator()(const dumb::Stream& s) const { return "STREAM " + std::to_string(s.n); }
    std::string operator()(const dumb::Unknown&) const { return "UNKNOWN"; }
    std::string operator()(const dumb::Error& e) const { return "ERROR " + std::string(e.reason); }
  };
  return std::visit(V{}, r);
}

std::string describe(const Frame& f) {
  return f.kind == Frame::Kind::kLine ? "L:" + std::string(f.line) : std::string("TOOLONG");
}

std::string describe(const Action& a) {
  switch (a.kind) {
    case Action::Kind::kReply: return "R:" + std::string(a.reply);
    case Action::Kind::kWait: return "W:" + std::to_string(a.wait_ms);
    case Action::Kind::kStream: return "S:" + std::to_string(a.stream_bytes);
  }
  return "?";
}

// Feeds `pieces` (each copied into its own short-lived string, so a view that
// outlived its piece would be caught by ASan) and records every frame.
// Also checks the framer's invariants after every call.
std::vector<std::string> frames_of(const std::vector<std::string>& pieces, std::size_t max_line = dumb::kMaxLine) {
  LineFramer framer(max_line);
  std::vector<std::string> out;
  for (const std::string& p : pieces) {
    std::string piece = p;
    std::string_view in = piece;
    for (;;) {
      auto f = framer.next(in);
      EXPECT_LE(framer.buffered(), max_line + 1);
      if (!f) {
        EXPECT_TRUE(in.empty()) << "next() returned nullopt with input left";
        break;
      }
      if (f->kind == Frame::Kind::kLine) {
        EXPECT_LE(f->line.size(), max_line);
      }
      out.push_back(describe(*f));
    }
  }
  return out;
}

std::vector<std::string> actions_of(const std::vector<std::string>& pieces) {
  Session session;
  std::vector<std::string> out;
  for (const std::string& p : pieces) {
    std::string piece = p;
    std::string_view in = piece;
    while (auto a = session.next(in)) out.push_back(describe(*a));
    EXPECT_TRUE(in.empty());
    EXPECT_LE(session.framer().buffered(), dumb::kMaxLine + 1);
  }
  return out;
}

std::vector<std::string> split_at(std::string_view s, std::vector<std::size_t> cuts) {
  std::vector<std::string> pieces;
  std::size_t prev = 0;
  for (std::size_t c : cuts) {
    pieces.emplace_back(s.substr(prev, c - prev));
    prev = c;
  }
  pieces.emplace_back(s.substr(prev));
  return pieces;
}

std::vector<std::string> bytes_of(std::string_view s) {
  std::vector<std::string> pieces;
  for (char c : s) pieces.emplace_back(1, c);
  return pieces;
}

// Checks that `input` gives the same frames and actions however it is split:
// whole, at every single byte boundary, in 1-byte pieces, at every pair of
// boundaries (short inputs) and at random boundaries (long inputs).
void expect_split_invariant(const std::string& input, const std::vector<std::string>& want_frames,
                            const std::vector<std::string>& want_actions) {
  SCOPED_TRACE("input of " + std::to_string(input.size()) + " bytes");
  ASSERT_EQ(frames_of({input}), want_frames);
  ASSERT_EQ(actions_of({input}), want_actions);
  for (std::size_t i = 0; i <= input.size(); ++i) {
    auto pieces = split_at(input, {i});
    ASSERT_EQ(frames_of(pieces), want_frames) << "split at " << i;
    ASSERT_EQ(actions_of(pieces), want_actions) << "split at " << i;
  }
  ASSERT_EQ(frames_of(bytes_of(input)), want_frames) << "1-byte pieces";
  ASSERT_EQ(actions_of(bytes_of(input)), want_actions) << "1-byte pieces";
  if (input.size() <= 80) {
    for (std::size_t i = 0; i <= input.size(); ++i) {
      for (std::size_t j = i; j <= input.size(); ++j) {
        ASSERT_EQ(frames_of(split_at(input, {i, j})), want_frames) << "split at " << i << "," << j;
      }
    }
  } else {
    std::mt19937 rng(12345);
    for (int round = 0; round < 200; ++round) {
      std::vector<std::size_t> cuts;
      std::size_t pos = 0;
      while (true) {
        pos += std::uniform_int_distribution<std::size_t>(0, 64)(rng);
        if (pos > input.size()) break;
        cuts.push_back(pos);
      }
      ASSERT_EQ(frames_of(split_at(input, cuts)), want_frames) << "random round " << round;
      ASSERT_EQ(actions_of(split_at(input, cuts)), want_actions) << "random round " << round;
    }
  }
}

std::string rep(std::size_t n, char c = 'A') { return std::string(n, c); }

// --------------------------------------------------------------- replies ---

TEST(Replies, Constants) {
  EXPECT_EQ(dumb::kPong, "PONG\n");
  EXPECT_EQ(dumb::kDone, "DONE\n");
  EXPECT_EQ(dumb::kUnknownCommand, "UNKNOWN_COMMAND\n");
  EXPECT_EQ(dumb::kLineTooLong, "ERROR line too long\n");
  EXPECT_EQ(dumb::kDefaultPort, 8090);
  EXPECT_EQ(dumb::kMaxLine, 1024u);
  EXPECT_EQ(dumb::kMaxWaitMs, 60000u);
  EXPECT_EQ(dumb::kMaxBurn, 10000u);
  EXPECT_EQ(dumb::kMaxStream, 1073741824u);
}

TEST(Replies, FormatResult) {
  EXPECT_EQ(dumb::format_result(0), "RESULT 0\n");
  EXPECT_EQ(dumb::format_result(50005000), "RESULT 50005000\n");
  EXPECT_EQ(dumb::format_result(UINT64_MAX), "RESULT 18446744073709551615\n");
}

TEST(Replies, ErrorReply) {
  EXPECT_EQ(dumb::error_reply("not a number"), "ERROR not a number\n");
  EXPECT_EQ(dumb::error_reply(dumb::kReasonLineTooLong), dumb::kLineTooLong);
  for (auto r : {dumb::kReasonMissingArgument, dumb::kReasonNotANumber, dumb::kReasonOutOfRange,
                 dumb::kReasonUnexpectedArgument, dumb::kReasonLineTooLong}) {
    EXPECT_EQ(dumb::static_error_reply(r), dumb::error_reply(r));
  }
  EXPECT_TRUE(dumb::static_error_reply("something else").empty());
}

// --------------------------------------------------------------- parsing ---

struct ParseCase {
  std::string line;
  std::string want;
};

TEST(Parse, Grammar) {
  const std::vector<ParseCase> cases = {
      // PING
      {"PING", "PING"},
      {"PING ", "ERROR unexpected argument"},
      {"PING x", "ERROR unexpected argument"},
      {"PING 1", "ERROR unexpected argument"},
      {"PINGX", "UNKNOWN"},
      {"PIN", "UNKNOWN"},
      {"ping", "UNKNOWN"},
      {"Ping", "UNKNOWN"},
      {" PING", "UNKNOWN"},
      {"PING\r", "UNKNOWN"},  // the framer strips one "\r"; parse() does not
      {"PING\t", "UNKNOWN"},
      // WAIT
      {"WAIT 0", "WAIT 0"},
      {"WAIT 100", "WAIT 100"},
      {"WAIT 007", "WAIT 7"},
      {"WAIT 60000", "WAIT 60000"},
      {"WAIT 60001", "ERROR out of range"},
      {"WAIT 99999999999999999999999999999999", "ERROR out of range"},
      {"WAIT", "ERROR missing argument"},
      {"WAIT ", "ERROR missing argument"},
      {"WAIT x", "ERROR not a number"},
      {"WAIT 1x", "ERROR not a number"},
      {"WAIT 1.5", "ERROR not a number"},
      {"WAIT +5", "ERROR not a number"},
      {"WAIT -", "ERROR not a number"},
      {"WAIT -5", "ERROR out of range"},
      {"WAIT -0", "ERROR out of range"},
      {"WAIT --5", "ERROR not a number"},
      {"WAIT -5x", "ERROR not a number"},
      {"WAIT  5", "ERROR not a number"},
      {"WAIT 5 ", "ERROR not a number"},
      {"WAIT 5 6", "ERROR not a number"},
      {"WAIT 0x10", "ERROR not a number"},
      {"WAIT\t5", "UNKNOWN"},
      {"wait 5", "UNKNOWN"},
      {"WAITS 5", "UNKNOWN"},
      // BURN
      {"BURN 0", "BURN 0"},
      {"BURN 10", "BURN 10"},
      {"BURN 10000", "BURN 10000"},
      {"BURN 10001", "ERROR out of range"},
      {"BURN", "ERROR missing argument"},
      {"BURN ", "ERROR missing argument"},
      {"BURN abc", "ERROR not a number"},
      {"BURN -1", "ERROR out of range"},
      {"burn 1", "UNKNOWN"},
      // STREAM
      {"STREAM 0", "STREAM 0"},
      {"STREAM 5", "STREAM 5"},
      {"STREAM 1073741824", "STREAM 1073741824"},
      {"STREAM 1073741825", "ERROR out of range"},
      {"STREAM 18446744073709551616", "ERROR out of range"},
      {"STREAM", "ERROR missing argument"},
      {"STREAM ", "ERROR missing argument"},
      {"STREAM 1e3", "ERROR not a number"},
      {"STREAM -7", "ERROR out of range"},
      {"Stream 1", "UNKNOWN"},
      // unknown / empty
      {"", "UNKNOWN"},
      {" ", "UNKNOWN"},
      {"HELLO", "UNKNOWN"},
      {"HELLO world", "UNKNOWN"},
      {std::string("PI\0NG", 5), "UNKNOWN"},
      {std::string("WAIT 1\0", 7), "ERROR not a number"},
      {"\xff\xfe", "UNKNOWN"},
  };
  for (const auto& c : cases) {
    EXPECT_EQ(describe(dumb::parse(c.line)), c.want) << "line: \"" << c.line << "\"";
  }
}

TEST(Parse, LimitsAtTheBoundary) {
  EXPECT_EQ(describe(dumb::parse("WAIT 60000")), "WAIT 60000");
  EXPECT_EQ(describe(dumb::parse("WAIT 60001")), "ERROR out of range");
  EXPECT_EQ(describe(dumb::parse("BURN 10000")), "BURN 10000");
  EXPECT_EQ(describe(dumb::parse("BURN 10001")), "ERROR out of range");
  EXPECT_EQ(describe(dumb::parse("STREAM 1073741824")), "STREAM 1073741824");
  EXPECT_EQ(describe(dumb::parse("STREAM 1073741825")), "ERROR out of range");
  // A long run of leading zeros is still the small number.
  EXPECT_EQ(describe(dumb::parse("WAIT " + rep(1000, '0') + "1")), "WAIT 1");
  EXPECT_EQ(describe(dumb::parse("WAIT " + rep(1000, '9'))), "ERROR out of range");
}

TEST(Parse, ErrorReasonsAreStatic) {
  for (const char* line : {"WAIT", "WAIT x", "WAIT 60001", "PING x"}) {
    auto r = dumb::parse(line);
    ASSERT_TRUE(std::holds_alternative<dumb::Error>(r));
    EXPECT_FALSE(dumb::static_error_reply(std::get<dumb::Error>(r).reason).empty()) << line;
  }
}

// --------------------------------------------------------------- framing ---

TEST(Framer, BasicLines) {
  EXPECT_EQ(frames_of({"PING\n"}), (std::vector<std::string>{"L:PING"}));
  EXPECT_EQ(frames_of({"PING\r\n"}), (std::vector<std::string>{"L:PING"}));
  EXPECT_EQ(frames_of({"\n"}), (std::vector<std::string>{"L:"}));
  EXPECT_EQ(frames_of({"\r\n"}), (std::vector<std::string>{"L:"}));
  EXPECT_EQ(frames_of({"\r\r\n"}), (std::vector<std::string>{"L:\r"}));    // only one "\r" is removed
  EXPECT_EQ(frames_of({"A\rB\n"}), (std::vector<std::string>{"L:A\rB"}));  // a "\r" elsewhere stays
  EXPECT_EQ(frames_of({"\n\n"}), (std::vector<std::string>{"L:", "L:"}));
  EXPECT_EQ(frames_of({"PING"}), (std::vector<std::string>{}));  // no "\n" yet
  EXPECT_EQ(frames_of({"PING\r"}), (std::vector<std::string>{}));
  EXPECT_EQ(frames_of({""}), (std::vector<std::string>{}));
}

TEST(Framer, PartialLineIsHeld) {
  LineFramer f;
  std::string_view in = "PING\nPI";
  auto a = f.next(in);
  ASSERT_TRUE(a);
  EXPECT_EQ(describe(*a), "L:PING");
  EXPECT_EQ(in, "PI");  // stops right after the first frame
  EXPECT_FALSE(f.mid_line());
  EXPECT_FALSE(f.next(in));
  EXPECT_TRUE(in.empty());
  EXPECT_EQ(f.buffered(), 2u);
  EXPECT_TRUE(f.mid_line());
  std::string_view rest = "NG\n";
  auto b = f.next(rest);
  ASSERT_TRUE(b);
  EXPECT_EQ(describe(*b), "L:PING");
  EXPECT_FALSE(f.mid_line());
  EXPECT_EQ(f.buffered(), 0u);
}

TEST(Framer, LineLengthLimit) {
  using V = std::vector<std::string>;
  // 1024 bytes: fine, with or without "\r"; the "\r" does not count.
  EXPECT_EQ(frames_of({rep(1024) + "\n"}), V{"L:" + rep(1024)});
  EXPECT_EQ(frames_of({rep(1024) + "\r\n"}), V{"L:" + rep(1024)});
  EXPECT_EQ(frames_of({rep(1023) + "\r\r\n"}), V{"L:" + rep(1023) + "\r"});
  // 1025 bytes: too long.
  EXPECT_EQ(frames_of({rep(1025) + "\n"}), V{"TOOLONG"});
  EXPECT_EQ(frames_of({rep(1025) + "\r\n"}), V{"TOOLONG"});
  EXPECT_EQ(frames_of({rep(1024) + "\r\r\n"}), V{"TOOLONG"});
  EXPECT_EQ(frames_of({rep(1024) + "\rX\n"}), V{"TOOLONG"});
  // Exactly one event however long, then the next line is served.
  EXPECT_EQ(frames_of({rep(100000) + "\nPING\n"}), (V{"TOOLONG", "L:PING"}));
  EXPECT_EQ(frames_of({rep(1025) + "\n" + rep(1025) + "\nPING\n"}), (V{"TOOLONG", "TOOLONG", "L:PING"}));
  // An unterminated overlong line: reported as soon as it is known.
  EXPECT_EQ(frames_of({rep(1025)}), V{"TOOLONG"});
  EXPECT_EQ(frames_of({rep(1024) + "\r"}), V{});
  EXPECT_EQ(frames_of({rep(1024) + "\rX"}), V{"TOOLONG"});
}

TEST(Framer, TooLongIsReportedEagerlyAndOnce) {
  LineFramer f;
  std::string chunk = rep(700);
  std::string_view in = chunk;
  EXPECT_FALSE(f.next(in));
  in = chunk;
  auto e = f.next(in);  // 1400 bytes without "\n"
  ASSERT_TRUE(e);
  EXPECT_EQ(e->kind, Frame::Kind::kTooLong);
  EXPECT_TRUE(f.discarding());
  EXPECT_EQ(f.buffered(), 0u);
  for (int i = 0; i < 1000; ++i) {  // 700 KB more of the same line
    in = chunk;
    EXPECT_FALSE(f.next(in));
    EXPECT_TRUE(in.empty());
    EXPECT_EQ(f.buffered(), 0u);
  }
  std::string tail = "xyz\nPING\n";
  in = tail;
  auto p = f.next(in);
  ASSERT_TRUE(p);
  EXPECT_EQ(describe(*p), "L:PING");
  EXPECT_FALSE(f.discarding());
  EXPECT_FALSE(f.next(in));
}

TEST(Framer, CustomMaxLine) {
  using V = std::vector<std::string>;
  EXPECT_EQ(frames_of({"abc\nabcd\nab\r\nabcd\r\n"}, 3), (V{"L:abc", "TOOLONG", "L:ab", "TOOLONG"}));
  EXPECT_EQ(frames_of({"\n"}, 0), (V{"L:"}));
  EXPECT_EQ(frames_of({"\r\n"}, 0), (V{"L:"}));
  EXPECT_EQ(frames_of({"a\nb\r\n"}, 0), (V{"TOOLONG", "TOOLONG"}));
  EXPECT_EQ(frames_of(bytes_of("a\nb\r\n\n"), 0), (V{"TOOLONG", "TOOLONG", "L:"}));
}

// Every request, pipelined sequences, overlong lines followed by good ones:
// the same frames and actions whatever the split.
TEST(SplitInvariance, SingleRequests) {
  struct C {
    std::string input, frame, action;
  };
  const std::vector<C> cases = {
      {"PING\n", "L:PING", "R:PONG\n"},
      {"PING\r\n", "L:PING", "R:PONG\n"},
      {"WAIT 100\n", "L:WAIT 100", "W:100"},
      {"WAIT 60000\r\n", "L:WAIT 60000", "W:60000"},
      {"WAIT 60001\n", "L:WAIT 60001", "R:ERROR out of range\n"},
      {"BURN 10\n", "L:BURN 10", "R:RESULT 55\n"},
      {"BURN 10001\n", "L:BURN 10001", "R:ERROR out of range\n"},
      {"STREAM 5\n", "L:STREAM 5", "S:5"},
      {"STREAM 0\r\n", "L:STREAM 0", "S:0"},
      {"NOPE\n", "L:NOPE", "R:UNKNOWN_COMMAND\n"},
      {"\n", "L:", "R:UNKNOWN_COMMAND\n"},
      {"\r\n", "L:", "R:UNKNOWN_COMMAND\n"},
      {"WAIT\n", "L:WAIT", "R:ERROR missing argument\n"},
      {"WAIT x\n", "L:WAIT x", "R:ERROR not a number\n"},
      {"WAIT -1\n", "L:WAIT -1", "R:ERROR out of range\n"},
      {"PING x\n", "L:PING x", "R:ERROR unexpected argument\n"},
  };
  for (const auto& c : cases) {
    expect_split_invariant(c.input, {c.frame}, {c.action});
  }
}

TEST(SplitInvariance, Pipelined) {
  const std::string input = "PING\nWAIT 5\r\nBURN 3\nSTREAM 2\nNOPE\n\nWAIT\nBURN 10001\nping\nPING\r\n";
  expect_split_invariant(
      input,
      {"L:PING", "L:WAIT 5", "L:BURN 3", "L:STREAM 2", "L:NOPE", "L:", "L:WAIT", "L:BURN 10001", "L:ping", "L:PING"},
      {"R:PONG\n", "W:5", "R:RESULT 6\n", "S:2", "R:UNKNOWN_COMMAND\n", "R:UNKNOWN_COMMAND\n",
       "R:ERROR missing argument\n", "R:ERROR out of range\n", "R:UNKNOWN_COMMAND\n", "R:PONG\n"});
}

TEST(SplitInvariance, OverlongThenGood) {
  const std::string too = "R:ERROR line too long\n";
  expect_split_invariant(rep(1025) + "\nPING\n", {"TOOLONG", "L:PING"}, {too, "R:PONG\n"});
  expect_split_invariant(rep(1024) + "\nPING\n", {"L:" + rep(1024), "L:PING"}, {"R:UNKNOWN_COMMAND\n", "R:PONG\n"});
  expect_split_invariant(rep(1024) + "\r\nPING\n", {"L:" + rep(1024), "L:PING"}, {"R:UNKNOWN_COMMAND\n", "R:PONG\n"});
  expect_split_invariant(rep(1025) + "\r\nPING\r\n", {"TOOLONG", "L:PING"}, {too, "R:PONG\n"});
  expect_split_invariant(rep(1024) + "\rX\nPING\n", {"TOOLONG", "L:PING"}, {too, "R:PONG\n"});
  expect_split_invariant("PING\n" + rep(3000, 'B') + "\nWAIT 1\n" + rep(1025) + "\n\nBURN 4\n",
                         {"L:PING", "TOOLONG", "L:WAIT 1", "TOOLONG", "L:", "L:BURN 4"},
                         {"R:PONG\n", too, "W:1", too, "R:UNKNOWN_COMMAND\n", "R:RESULT 10\n"});
  // A valid request padded to exactly the limit ("WAIT " + 1019 digits).
  const std::string padded = "WAIT " + rep(1018, '0') + "7";
  ASSERT_EQ(padded.size(), 1024u);
  expect_split_invariant(padded + "\r\n" + padded + "0\n", {"L:" + padded, "TOOLONG"}, {"W:7", too});
}

// ------------------------------------------------------------------- BURN ---

TEST(Burn, Values) {
  EXPECT_EQ(dumb::burn(0), 0u);
  EXPECT_EQ(dumb::burn(1), 1u);
  EXPECT_EQ(dumb::burn(2), 3u);
  EXPECT_EQ(dumb::burn(100), 5050u);
  EXPECT_EQ(dumb::burn(10000), 50005000u);
  for (std::uint32_t n = 0; n < 300; ++n) {
    EXPECT_EQ(dumb::burn(n), std::uint64_t{n} * (n + 1) / 2);
  }
}

TEST(Burn, IsReallyDeep) {
  const std::size_t d1000 = dumb::measure_burn_stack(1000);
  const std::size_t d2000 = dumb::measure_burn_stack(2000);
  const double per_level = (static_cast<double>(d2000) - static_cast<double>(d1000)) / 1000.0;
  RecordProperty("burn_stack_bytes_per_level", std::to_string(per_level));
  std::printf("BURN stack: %zu bytes for 1000 levels (%.1f bytes/level)\n", d1000, per_level);
  EXPECT_EQ(dumb::measure_burn_stack(0), 0u);
#ifndef DUMB_TEST_SANITIZED
  EXPECT_GE(d1000, 1000u * 256u);
  EXPECT_LE(d1000, 1000u * 1024u);
  EXPECT_EQ(d2000, 2 * d1000);
#endif
}

// ----------------------------------------------------------------- STREAM ---

std::string drain_fill(std::uint64_t n, std::size_t buf_size) {
  StreamCursor c(n);
  std::string out;
  std::vector<char> buf(buf_size);
  while (!c.done()) {
    const std::uint64_t before = c.remaining();
    const std::size_t k = c.fill(buf);
    EXPECT_EQ(k, std::min<std::uint64_t>(buf_size, before));
    EXPECT_EQ(c.remaining(), before - k);
    out.append(buf.data(), k);
    if (k == 0) break;
  }
  EXPECT_EQ(c.fill(buf), 0u);
  return out;
}

// Drains with peek/consume, consuming only part of each view (like partial
// writes do).
std::string drain_peek(std::uint64_t n, std::size_t max, std::size_t partial_divisor) {
  StreamCursor c(n);
  std::string out;
  while (!c.done()) {
    const std::string_view v = c.peek(max);
    EXPECT_FALSE(v.empty());
    EXPECT_LE(v.size(), max);
    EXPECT_LE(v.size(), dumb::kStreamChunk + 5);
    if (v.empty()) break;
    const std::size_t k = std::max<std::size_t>(1, v.size() / partial_divisor);
    out.append(v.substr(0, k));
    c.consume(k);
  }
  EXPECT_TRUE(c.peek().empty());
  return out;
}

TEST(StreamCursor, ExactBytes) {
  const std::size_t C = dumb::kStreamChunk;
  for (std::uint64_t n :
       {std::uint64_t{0}, std::uint64_t{1}, std::uint64_t{2}, std::uint64_t{C - 1}, std::uint64_t{C},
        std::uint64_t{C + 1}, std::uint64_t{C + 5}, std::uint64_t{3 * C + 7}, std::uint64_t{5'000'003}}) {
    SCOPED_TRACE("n = " + std::to_string(n));
    const std::string want = rep(n) + "DONE\n";
    EXPECT_EQ(StreamCursor(n).remaining(), n + 5);
    for (std::size_t buf :
         {std::size_t{1}, std::size_t{4}, std::size_t{5}, std::size_t{6}, C - 1, C, C + 1, 2 * C + 3}) {
      if (buf < 64 && n > 3 * C + 7) continue;  // too slow, nothing new
      EXPECT_TRUE(drain_fill(n, buf) == want) << "fill, buffer " << buf;
    }
    for (std::size_t max : {std::size_t{1}, std::size_t{7}, C - 1, C, C + 1, C + 5, C + 6, 10 * C}) {
      for (std::size_t div : {1, 3}) {
        if (max < 64 && n > 3 * C + 7) continue;
        EXPECT_TRUE(drain_peek(n, max, div) == want) << "peek, max " << max << ", divisor " << div;
      }
    }
  }
}

TEST(StreamCursor, MaxSizeIsExact) {
  // 1 GiB, checked chunk by chunk without ever holding it.
  const std::uint64_t n = dumb::kMaxStream;
  StreamCursor c(n);
  std::vector<char> buf((1 << 20) + 7);
  const std::string all_a = rep(buf.size());
  std::uint64_t as = 0;
  std::string tail;
  while (!c.done()) {
    const std::size_t k = c.fill(buf);
    ASSERT_GT(k, 0u);
    std::string_view v(buf.data(), k);
    // memcmp first: much faster than a byte loop in sanitizer builds.
    const std::size_t first_not_a =
        std::memcmp(v.data(), all_a.data(), k) == 0 ? std::string_view::npos : v.find_first_not_of('A');
    if (first_not_a == std::string_view::npos) {
      ASSERT_TRUE(tail.empty());
      as += k;
    } else {
      ASSERT_TRUE(tail.empty() || v.substr(0, first_not_a).empty());
      as += first_not_a;
      tail.append(v.substr(first_not_a));
    }
  }
  EXPECT_EQ(as, n);
  EXPECT_EQ(tail, "DONE\n");
}

TEST(StreamCursor, ConsumeClampsAndPeekZero) {
  StreamCursor c(3);
  EXPECT_TRUE(c.peek(0).empty());
  std::span<char> none;
  EXPECT_EQ(c.fill(none), 0u);
  EXPECT_EQ(c.peek(), "AAADONE\n");
  c.consume(2);
  EXPECT_EQ(c.peek(), "ADONE\n");
  c.consume(1000);
  EXPECT_TRUE(c.done());
  EXPECT_EQ(c.remaining(), 0u);
}

// ---------------------------------------------------------------- Session ---

TEST(Session, StopsAfterEachActionAndKeepsTheRest) {
  // An event-driven server stops at a STREAM, writes it, then resumes with
  // the rest of its input: nothing is lost or reordered.
  Session s;
  std::string input = "STREAM 3\nPING\nWAIT 10\nPI";
  std::string_view in = input;
  auto a = s.next(in);
  ASSERT_TRUE(a);
  EXPECT_EQ(describe(*a), "S:3");
  EXPECT_EQ(in, "PING\nWAIT 10\nPI");
  std::string held(in);  // the server keeps the unprocessed bytes while streaming
  in = held;
  a = s.next(in);
  ASSERT_TRUE(a);
  EXPECT_EQ(describe(*a), "R:PONG\n");
  a = s.next(in);
  ASSERT_TRUE(a);
  EXPECT_EQ(describe(*a), "W:10");
  EXPECT_FALSE(s.next(in));
  EXPECT_TRUE(s.framer().mid_line());
  std::string more = "NG\r\n";
  in = more;
  a = s.next(in);
  ASSERT_TRUE(a);
  EXPECT_EQ(describe(*a), "R:PONG\n");
}

TEST(Session, ReplyViewValidUntilNextCall) {
  Session s;
  std::string input = "BURN 10000\nBURN 4\n";
  std::string_view in = input;
  auto a = s.next(in);
  ASSERT_TRUE(a);
  EXPECT_EQ(a->reply, "RESULT 50005000\n");
  a = s.next(in);
  ASSERT_TRUE(a);
  EXPECT_EQ(a->reply, "RESULT 10\n");
}

TEST(Session, ToAction) {
  std::string scratch;
  EXPECT_EQ(describe(dumb::to_action(dumb::Ping{}, scratch)), "R:PONG\n");
  EXPECT_EQ(describe(dumb::to_action(dumb::Wait{42}, scratch)), "W:42");
  EXPECT_EQ(describe(dumb::to_action(dumb::Burn{3}, scratch)), "R:RESULT 6\n");
  EXPECT_EQ(describe(dumb::to_action(dumb::Stream{9}, scratch)), "S:9");
  EXPECT_EQ(describe(dumb::to_action(dumb::Unknown{}, scratch)), "R:UNKNOWN_COMMAND\n");
  EXPECT_EQ(describe(dumb::to_action(dumb::Error{dumb::kReasonNotANumber}, scratch)), "R:ERROR not a number\n");
  EXPECT_EQ(describe(dumb::to_action(dumb::Error{"custom"}, scratch)), "R:ERROR custom\n");
}

}  // namespace
