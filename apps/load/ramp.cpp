// load/ramp.cpp -- see ramp.h.

#include "load/ramp.h"

#include <cstdio>

namespace load {

namespace {
std::string ms(std::uint64_t ns) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.1f ms", double(ns) / 1e6);
  return buf;
}
}  // namespace

std::string KneeFinder::violation(const StepResult& step) const {
  if (step.requests == 0 || step.failures >= step.requests) return "no successful request";
  if (step.p99_ns > max_p99_ns_) return "p99 " + ms(step.p99_ns) + " > " + ms(max_p99_ns_);
  double ratio = double(step.failures) / double(step.requests);
  if (ratio > max_errors_) {
    char buf[96];
    std::snprintf(buf, sizeof buf, "errors+timeouts %.2f%% of requests > %.2f%%", ratio * 100, max_errors_ * 100);
    return buf;
  }
  return {};
}

bool KneeFinder::add(const StepResult& step) {
  if (broken_) return false;
  ++steps_;
  std::string why = violation(step);
  if (why.empty()) {
    knee_ = step;
    return true;
  }
  broken_ = step;
  reason_ = std::move(why);
  return false;
}

}  // namespace load
