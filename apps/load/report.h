// load/report.h -- dumb_load's results: the figures of a run and how they
// are printed (a summary for people, one JSON object for scripts, the
// progress line).  No I/O besides the FILE* handed in.

#pragma once

#include <cstdint>
#include <cstdio>
#include <map>
#include <optional>
#include <string>

#include "load/histogram.h"
#include "load/options.h"
#include "load/ramp.h"

namespace load {

struct Totals {
  std::uint64_t ok = 0;                // requests answered correctly
  std::uint64_t timeouts = 0;          // requests without a reply within --timeout
  std::uint64_t errors = 0;            // wrong replies, resets, early EOFs
  std::uint64_t connect_failures = 0;  // dials that failed (refused, timed out, out of fds)
  std::uint64_t requests() const noexcept { return ok + timeouts + errors; }
};

struct Summary {
  const Options* options = nullptr;
  double elapsed_s = 0;  // first dial to stop
  Totals totals;
  HistogramData latency;   // of the successful requests, ns, from the intended send time
  HistogramData send_lag;  // open loop: of every request sent, ns from its intended send time
  // Of the requests answered after every connection was up (without --ramp):
  // the steady state, dialling excluded; all_up_s is when that began.
  std::optional<HistogramData> latency_all_up;
  double all_up_s = 0;
  int connections_peak = 0;                          // connections open at once, at most
  std::map<std::string, std::uint64_t> error_kinds;  // "connect: connection refused (ECONNREFUSED)" -> n
  const KneeFinder* ramp = nullptr;                  // with --ramp
  bool interrupted = false;                          // stopped by SIGINT/SIGTERM
};

void print_summary(std::FILE* out, const Summary& s);
void print_json(std::FILE* out, const Summary& s);

// One progress line (no newline): the last second's rate and latency, the
// totals so far.
std::string progress_line(double elapsed_s, int connected, int target, const Totals& totals, double rate,
                          const HistogramData& last_second);

// "0.123 ms"-style, for ns values.
std::string format_ms(std::uint64_t ns);

}  // namespace load
