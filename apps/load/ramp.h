// load/ramp.h -- finding the knee of a server: dumb_load --ramp adds
// connections step by step and feeds each step's figures to a KneeFinder,
// which says whether to go on and, at the end, where the server broke.
//
// A step is within bounds when it got at least one reply, its p99 is at
// most max_p99 and its failures (errors + timeouts) are at most max_errors
// of its requests.  The knee is the last step within bounds before the
// first one out of them (which is `broken`).  The ramp stops at the first
// step out of bounds: a server past its knee only gets worse, and pushing
// on would bury the figures under timeouts.  No I/O, no clock: unit-tested.

#pragma once

#include <cstdint>
#include <optional>
#include <string>

namespace load {

struct StepResult {
  int connections = 0;         // open during the step
  std::uint64_t requests = 0;  // completed or failed within the step
  std::uint64_t failures = 0;  // errors + timeouts within the step
  std::uint64_t p99_ns = 0;    // of the step's successful requests
  double throughput = 0;       // successful requests per second
};

class KneeFinder {
 public:
  KneeFinder(std::uint64_t max_p99_ns, double max_errors) : max_p99_ns_(max_p99_ns), max_errors_(max_errors) {}

  // Records a step; true if it was within bounds (the ramp may go on).
  // After a step out of bounds, further steps are ignored (false).
  bool add(const StepResult& step);

  const std::optional<StepResult>& knee() const noexcept { return knee_; }
  const std::optional<StepResult>& broken() const noexcept { return broken_; }
  // Why `broken` was out of bounds ("p99 250.0 ms > 100.0 ms", ...); empty
  // if no step was.
  const std::string& reason() const noexcept { return reason_; }
  int steps() const noexcept { return steps_; }

  // The bound a step violates, or empty when it is within bounds.
  std::string violation(const StepResult& step) const;

 private:
  std::uint64_t max_p99_ns_;
  double max_errors_;
  std::optional<StepResult> knee_;
  std::optional<StepResult> broken_;
  std::string reason_;
  int steps_ = 0;
};

}  // namespace load
