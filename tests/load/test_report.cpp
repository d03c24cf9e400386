// tests/load/test_report.cpp -- load/report.h: the JSON summary carries the
// whole run's latency, the steady state's (every connection up) and, open
// loop, dumb_load's own send lag, each from its own histogram.

#include <gtest/gtest.h>

#include <cstdio>
#include <cstdlib>
#include <string>

#include "load/report.h"

namespace load {
namespace {

HistogramData filled(std::uint64_t value_ns, int n) {
  Histogram h;
  for (int i = 0; i < n; ++i) h.record(value_ns);
  HistogramData d;
  h.snapshot_into(d);
  return d;
}

std::string json_of(const Summary& s) {
  char* buf = nullptr;
  std::size_t size = 0;
  std::FILE* f = open_memstream(&buf, &size);
  print_json(f, s);
  std::fclose(f);
  std::string out(buf, size);
  std::free(buf);
  return out;
}

// The number after "key": within the object that follows "object":.
double number_in(const std::string& json, const std::string& object, const std::string& key) {
  std::size_t at = json.find("\"" + object + "\":{");
  EXPECT_NE(at, std::string::npos) << object << " missing in " << json;
  std::size_t end = json.find('}', at);
  std::size_t k = json.find("\"" + key + "\":", at);
  EXPECT_LT(k, end) << key << " missing in " << object;
  return std::strtod(json.c_str() + k + key.size() + 3, nullptr);
}

TEST(Json, SteadyStateAndSendLagAreTheirOwn) {
  Options o;  // open loop
  Summary s;
  s.options = &o;
  s.elapsed_s = 10;
  s.totals.ok = 300;
  s.latency = filled(50'000'000, 300);        // 50 ms over the whole run
  s.latency_all_up = filled(1'000'000, 200);  // 1 ms once every connection was up
  s.all_up_s = 1;
  s.send_lag = filled(20'000, 300);  // 20 us late
  std::string json = json_of(s);
  EXPECT_NEAR(number_in(json, "latency_ms", "p99"), 50.0, 1.0);
  EXPECT_NEAR(number_in(json, "latency_all_up_ms", "p99"), 1.0, 0.02);
  EXPECT_EQ(number_in(json, "latency_all_up_ms", "requests"), 200);
  EXPECT_NEAR(number_in(json, "send_lag_ms", "p99"), 0.020, 0.001);
  EXPECT_NE(json.find("\"all_up_s\":1.000"), std::string::npos) << json;
}

TEST(Json, NoSendLagInAClosedLoopAndNoSteadyStateWhenNeverAllUp) {
  Options o;
  o.closed_loop = true;
  Summary s;
  s.options = &o;
  s.latency = filled(1'000, 10);
  std::string json = json_of(s);
  EXPECT_EQ(json.find("send_lag_ms"), std::string::npos) << json;
  EXPECT_EQ(json.find("latency_all_up_ms"), std::string::npos) << json;
  EXPECT_NE(json.find("\"latency_ms\":{"), std::string::npos) << json;
}

}  // namespace
}  // namespace load
