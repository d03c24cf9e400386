// load/options.h -- dumb_load's command line: the options, their parser and
// the usage text.  No I/O: parse_options() returns what to do, main() does
// it (and exits 2 on an error), so every rule here is unit-tested.

#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace load {

using std::chrono::nanoseconds;

inline constexpr int kMaxConnections = 100000;

// --ramp START:STEP:SECONDS
struct RampPlan {
  int start = 0;          // connections in the first step
  int step = 0;           // connections added per step
  nanoseconds period{0};  // length of a step
};

struct Options {
  std::string host = "127.0.0.1";
  std::uint16_t port = 8090;
  int connections = 100;                            // with --ramp: the most it will open
  nanoseconds duration = std::chrono::seconds(10);  // with --ramp: an overall bound (0: none)
  double rate = 10.0;                               // requests per connection per second (open loop)
  bool closed_loop = false;                         // send the next request as soon as a reply is in
  std::vector<std::string> commands{"BURN 300"};    // request lines, sent round-robin
  nanoseconds timeout = std::chrono::seconds(3);    // per request (and per dial)
  int dial_concurrency = 200;                       // dials in flight at once
  bool progress = false;                            // a line per second on stderr even when not a terminal
  bool json = false;                                // the summary as one JSON object on stdout
  std::optional<RampPlan> ramp;
  nanoseconds max_p99 = std::chrono::milliseconds(100);  // ramp: a step's p99 bound
  double max_errors = 0.01;                              // ramp: a step's bound on (errors + timeouts) / requests
  int workers = 0;                                       // gort workers; 0: the runtime's default
  std::string debug_addr;                                // --debug-addr HOST:PORT: /metrics and a live page ("": none)
};

struct ParseOutcome {
  enum class Kind { kRun, kHelp, kError } kind = Kind::kRun;
  Options options;    // kind == kRun
  std::string error;  // kind == kError: one line, without the program name
};

// args: argv[1..].  Flags take "--flag value" or "--flag=value".
ParseOutcome parse_options(std::span<const std::string_view> args);
std::string usage();

// "10", "2.5", "10s", "250ms", "100us", "2m": a bare number is seconds.
// nullopt if malformed or negative.
std::optional<nanoseconds> parse_duration(std::string_view text);

}  // namespace load
