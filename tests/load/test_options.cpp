// tests/load/test_options.cpp -- load/options.h: every flag, every error.

#include <gtest/gtest.h>

#include <vector>

#include "load/options.h"

namespace load {
namespace {

using namespace std::chrono_literals;
using Kind = ParseOutcome::Kind;

ParseOutcome parse(std::vector<std::string_view> args) { return parse_options(args); }

TEST(Options, Defaults) {
  ParseOutcome p = parse({});
  ASSERT_EQ(p.kind, Kind::kRun);
  const Options& o = p.options;
  EXPECT_EQ(o.host, "127.0.0.1");
  EXPECT_EQ(o.port, 8090);
  EXPECT_EQ(o.connections, 100);
  EXPECT_EQ(o.duration, 10s);
  EXPECT_EQ(o.rate, 10.0);  // the course's every 100 ms
  EXPECT_FALSE(o.closed_loop);
  EXPECT_EQ(o.commands, std::vector<std::string>{"BURN 300"});
  EXPECT_EQ(o.timeout, 3s);
  EXPECT_FALSE(o.ramp);
  EXPECT_FALSE(o.json);
}

TEST(Options, EveryFlag) {
  ParseOutcome p = parse({"--host",    "10.0.0.1",     "--port=9000",   "--connections",
                          "5000",      "--duration",   "2.5s",          "--rate",
                          "20",        "--cmd",        "PING",          "--cmd",
                          "STREAM 10", "--timeout",    "500ms",         "--dial-concurrency",
                          "50",        "--progress",   "--json",        "--max-p99",
                          "20ms",      "--max-errors", "0.05",          "--workers",
                          "3",         "--debug-addr", "127.0.0.1:6061"});
  ASSERT_EQ(p.kind, Kind::kRun) << p.error;
  const Options& o = p.options;
  EXPECT_EQ(o.host, "10.0.0.1");
  EXPECT_EQ(o.port, 9000);
  EXPECT_EQ(o.connections, 5000);
  EXPECT_EQ(o.duration, 2500ms);
  EXPECT_EQ(o.rate, 20.0);
  EXPECT_EQ(o.commands, (std::vector<std::string>{"PING", "STREAM 10"}));  // the first --cmd replaces the default
  EXPECT_EQ(o.timeout, 500ms);
  EXPECT_EQ(o.dial_concurrency, 50);
  EXPECT_TRUE(o.progress);
  EXPECT_TRUE(o.json);
  EXPECT_EQ(o.max_p99, 20ms);
  EXPECT_EQ(o.max_errors, 0.05);
  EXPECT_EQ(o.workers, 3);
  EXPECT_EQ(o.debug_addr, "127.0.0.1:6061");
  EXPECT_EQ(parse({"--debug-addr", "localhost:1"}).kind, Kind::kError);
  EXPECT_EQ(parse({"--debug-addr", "127.0.0.1"}).kind, Kind::kError);
  EXPECT_EQ(parse({"--debug-addr", "127.0.0.1:0"}).kind, Kind::kError);
}

TEST(Options, Help) {
  EXPECT_EQ(parse({"--help"}).kind, Kind::kHelp);
  EXPECT_EQ(parse({"--connections", "5", "-h"}).kind, Kind::kHelp);
  EXPECT_NE(usage().find("--closed-loop"), std::string::npos);
}

TEST(Options, Ramp) {
  ParseOutcome p = parse({"--ramp", "500:250:5"});
  ASSERT_EQ(p.kind, Kind::kRun) << p.error;
  ASSERT_TRUE(p.options.ramp);
  EXPECT_EQ(p.options.ramp->start, 500);
  EXPECT_EQ(p.options.ramp->step, 250);
  EXPECT_EQ(p.options.ramp->period, 5s);
  EXPECT_EQ(p.options.connections, 50000) << "a ramp goes up to 50 000 unless told";
  EXPECT_EQ(p.options.duration, 0s) << "a ramp runs until its knee unless told";
  p = parse({"--ramp", "100:100:500ms", "--connections", "1000", "--duration", "60"});
  ASSERT_EQ(p.kind, Kind::kRun) << p.error;
  EXPECT_EQ(p.options.ramp->period, 500ms);
  EXPECT_EQ(p.options.connections, 1000);
  EXPECT_EQ(p.options.duration, 60s);
}

TEST(Options, ClosedLoop) {
  ParseOutcome p = parse({"--closed-loop"});
  ASSERT_EQ(p.kind, Kind::kRun);
  EXPECT_TRUE(p.options.closed_loop);
}

struct BadCase {
  std::vector<std::string_view> args;
  std::string_view message_part;
};

TEST(Options, EveryBadFlagIsAClearError) {
  const std::vector<BadCase> cases = {
      {{"--bogus"}, "unknown flag '--bogus'"},
      {{"connections"}, "unknown flag"},
      {{"--connections"}, "--connections needs a value"},
      {{"--connections", "0"}, "--connections needs a whole number from 1 to 100000"},
      {{"--connections", "100001"}, "from 1 to 100000"},
      {{"--connections", "12x"}, "not '12x'"},
      {{"--port", "0"}, "--port needs a whole number from 1 to 65535"},
      {{"--port", "65536"}, "--port"},
      {{"--host", "localhost"}, "--host needs an IPv4 address"},
      {{"--duration", "0"}, "--duration needs a positive duration"},
      {{"--duration", "-1"}, "--duration needs a positive duration"},
      {{"--duration", "10x"}, "--duration"},
      {{"--duration", "s"}, "--duration"},
      {{"--timeout", "inf"}, "--timeout"},
      {{"--rate", "0"}, "--rate needs"},
      {{"--rate", "-5"}, "--rate needs"},
      {{"--rate", "nan"}, "--rate needs"},
      {{"--rate", "5", "--closed-loop"}, "--rate and --closed-loop exclude each other"},
      {{"--ramp", "500"}, "--ramp needs START:STEP:SECONDS"},
      {{"--ramp", "0:100:5"}, "--ramp needs"},
      {{"--ramp", "100:0:5"}, "--ramp needs"},
      {{"--ramp", "100:100:0"}, "--ramp needs"},
      {{"--ramp", "a:b:c"}, "--ramp needs"},
      {{"--ramp", "2000:100:1", "--connections", "1000"}, "more than --connections 1000"},
      {{"--max-errors", "1.5"}, "--max-errors needs a fraction"},
      {{"--max-p99", "0ms"}, "--max-p99 needs a positive duration"},
      {{"--dial-concurrency", "0"}, "--dial-concurrency"},
      {{"--workers", "0"}, "--workers"},
      {{"--cmd", std::string_view("PING\nPING")}, "one line"},
  };
  for (const BadCase& c : cases) {
    ParseOutcome p = parse(c.args);
    EXPECT_EQ(p.kind, Kind::kError) << c.args[0];
    EXPECT_NE(p.error.find(c.message_part), std::string::npos) << "got: " << p.error;
  }
  std::string long_line(1025, 'x');
  EXPECT_EQ(parse({"--cmd", long_line}).kind, Kind::kError);
}

TEST(Durations, Units) {
  EXPECT_EQ(parse_duration("10"), 10s);
  EXPECT_EQ(parse_duration("2.5"), 2500ms);
  EXPECT_EQ(parse_duration("3s"), 3s);
  EXPECT_EQ(parse_duration("250ms"), 250ms);
  EXPECT_EQ(parse_duration("100us"), 100us);
  EXPECT_EQ(parse_duration("7ns"), 7ns);
  EXPECT_EQ(parse_duration("2m"), 120s);
  EXPECT_EQ(parse_duration("0"), 0s);
  EXPECT_FALSE(parse_duration(""));
  EXPECT_FALSE(parse_duration("ms"));
  EXPECT_FALSE(parse_duration("-1s"));
  EXPECT_FALSE(parse_duration("+1s"));
  EXPECT_FALSE(parse_duration("1h"));
  EXPECT_FALSE(parse_duration("1e30"));
}

}  // namespace
}  // namespace load
