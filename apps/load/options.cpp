// load/options.cpp -- see options.h.

#include "load/options.h"

#include <arpa/inet.h>

#include <charconv>
#include <cmath>
#include <functional>
#include <map>

namespace load {

namespace {

std::optional<double> parse_double(std::string_view text) {
  double value = 0;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (text.empty() || ec != std::errc() || end != text.data() + text.size() || !std::isfinite(value))
    return std::nullopt;
  return value;
}

std::optional<long> parse_long(std::string_view text) {
  long value = 0;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (text.empty() || ec != std::errc() || end != text.data() + text.size()) return std::nullopt;
  return value;
}

// Built with reserve + append: "'" + std::string(s) trips GCC 12's
// -Wrestrict false positive at -O3.
std::string quoted(std::string_view s) {
  std::string out;
  out.reserve(s.size() + 2);
  out += '\'';
  out += s;
  out += '\'';
  return out;
}

// One flag's parser: sets the option from the value, or returns an error.
using Setter = std::function<std::optional<std::string>(Options&, std::string_view)>;

std::optional<std::string> set_int(int& out, std::string_view flag, std::string_view value, long lo, long hi) {
  auto n = parse_long(value);
  if (!n || *n < lo || *n > hi)
    return std::string(flag) + " needs a whole number from " + std::to_string(lo) + " to " + std::to_string(hi) +
           ", not " + quoted(value);
  out = int(*n);
  return std::nullopt;
}

std::optional<std::string> set_positive_duration(nanoseconds& out, std::string_view flag, std::string_view value) {
  auto d = parse_duration(value);
  if (!d || d->count() <= 0)
    return std::string(flag) + " needs a positive duration (e.g. 10, 2.5s, 250ms), not " + quoted(value);
  out = *d;
  return std::nullopt;
}

std::optional<std::string> set_ramp(Options& o, std::string_view value) {
  auto bad = [&] {
    return "--ramp needs START:STEP:SECONDS (connections to start with, connections added per step, "
           "seconds per step; e.g. 500:500:5), not " +
           quoted(value);
  };
  std::size_t a = value.find(':');
  std::size_t b = a == std::string_view::npos ? a : value.find(':', a + 1);
  if (b == std::string_view::npos) return bad();
  auto start = parse_long(value.substr(0, a));
  auto step = parse_long(value.substr(a + 1, b - a - 1));
  auto period = parse_duration(value.substr(b + 1));
  if (!start || !step || !period || *start < 1 || *start > kMaxConnections || *step < 1 || *step > kMaxConnections ||
      period->count() <= 0)
    return bad();
  o.ramp = RampPlan{int(*start), int(*step), *period};
  return std::nullopt;
}

std::optional<std::string> set_command(Options& o, std::string_view value, bool& first) {
  if (value.find('\n') != std::string_view::npos) return std::string("--cmd: a request is one line, without '\\n'");
  if (value.size() > 1024) return std::string("--cmd: longer than the protocol's 1024-byte line limit");
  if (first) o.commands.clear();  // the first --cmd replaces the default
  first = false;
  o.commands.emplace_back(value);
  return std::nullopt;
}

// The flags that take a value.  Built per parse: --cmd's setter refers to
// that parse's first_command.
std::map<std::string_view, Setter> value_flags(bool& first_command) {
  return {
      {"--host",
       [](Options& o, std::string_view v) -> std::optional<std::string> {
         in_addr probe{};
         if (inet_pton(AF_INET, std::string(v).c_str(), &probe) != 1)
           return "--host needs an IPv4 address, not " + quoted(v);
         o.host = v;
         return std::nullopt;
       }},
      {"--port",
       [](Options& o, std::string_view v) -> std::optional<std::string> {
         int port = 0;
         if (auto e = set_int(port, "--port", v, 1, 65535)) return e;
         o.port = std::uint16_t(port);
         return std::nullopt;
       }},
      {"--connections",
       [](Options& o, std::string_view v) { return set_int(o.connections, "--connections", v, 1, kMaxConnections); }},
      {"--duration", [](Options& o, std::string_view v) { return set_positive_duration(o.duration, "--duration", v); }},
      {"--rate",
       [](Options& o, std::string_view v) -> std::optional<std::string> {
         auto r = parse_double(v);
         if (!r || *r <= 0 || *r > 1e6)
           return "--rate needs requests per connection per second, more than 0 and at most 1000000, not " + quoted(v);
         o.rate = *r;
         return std::nullopt;
       }},
      {"--cmd", [&first_command](Options& o, std::string_view v) { return set_command(o, v, first_command); }},
      {"--timeout", [](Options& o, std::string_view v) { return set_positive_duration(o.timeout, "--timeout", v); }},
      {"--dial-concurrency",
       [](Options& o, std::string_view v) { return set_int(o.dial_concurrency, "--dial-concurrency", v, 1, 10000); }},
      {"--ramp", [](Options& o, std::string_view v) { return set_ramp(o, v); }},
      {"--max-p99", [](Options& o, std::string_view v) { return set_positive_duration(o.max_p99, "--max-p99", v); }},
      {"--max-errors",
       [](Options& o, std::string_view v) -> std::optional<std::string> {
         auto f = parse_double(v);
         if (!f || *f < 0 || *f > 1) return "--max-errors needs a fraction from 0 to 1 (e.g. 0.01), not " + quoted(v);
         o.max_errors = *f;
         return std::nullopt;
       }},
      {"--workers", [](Options& o, std::string_view v) { return set_int(o.workers, "--workers", v, 1, 1024); }},
      {"--debug-addr",
       [](Options& o, std::string_view v) -> std::optional<std::string> {
         std::size_t colon = v.rfind(':');
         in_addr probe{};
         int port = 0;
         if (colon == std::string_view::npos ||
             inet_pton(AF_INET, std::string(v.substr(0, colon)).c_str(), &probe) != 1 ||
             set_int(port, "--debug-addr", v.substr(colon + 1), 1, 65535))
           return "--debug-addr needs IPV4-ADDRESS:PORT, not " + quoted(v);
         o.debug_addr = v;
         return std::nullopt;
       }},
  };
}

}  // namespace

std::optional<nanoseconds> parse_duration(std::string_view text) {
  struct Unit {
    std::string_view suffix;
    double ns;
  };
  static constexpr Unit kUnits[] = {{"ms", 1e6}, {"us", 1e3}, {"ns", 1}, {"s", 1e9}, {"m", 60e9}};
  double scale = 1e9;
  for (const Unit& u : kUnits) {
    if (text.size() > u.suffix.size() && text.ends_with(u.suffix)) {
      text.remove_suffix(u.suffix.size());
      scale = u.ns;
      break;
    }
  }
  if (text.empty() || !(text[0] >= '0' && text[0] <= '9')) return std::nullopt;  // no sign, no "inf"
  auto value = parse_double(text);
  if (!value || *value < 0 || *value * scale > 1e18) return std::nullopt;
  return nanoseconds(std::int64_t(std::llround(*value * scale)));
}

ParseOutcome parse_options(std::span<const std::string_view> args) {
  ParseOutcome out;
  Options& o = out.options;
  bool first_command = true;
  bool rate_given = false, connections_given = false, duration_given = false;
  auto fail = [&](std::string message) {
    out.kind = ParseOutcome::Kind::kError;
    out.error = std::move(message);
    return out;
  };
  const auto flags = value_flags(first_command);
  for (std::size_t i = 0; i < args.size(); ++i) {
    std::string_view arg = args[i];
    if (arg == "--help" || arg == "-h") {
      out.kind = ParseOutcome::Kind::kHelp;
      return out;
    }
    if (arg == "--closed-loop" || arg == "--progress" || arg == "--json") {
      (arg == "--closed-loop" ? o.closed_loop : arg == "--progress" ? o.progress : o.json) = true;
      continue;
    }
    std::string_view name = arg, value;
    bool inline_value = false;
    if (std::size_t eq = arg.find('='); arg.starts_with("--") && eq != std::string_view::npos) {
      name = arg.substr(0, eq);
      value = arg.substr(eq + 1);
      inline_value = true;
    }
    auto flag = flags.find(name);
    if (flag == flags.end()) return fail("unknown flag " + quoted(arg));
    if (!inline_value) {
      if (i + 1 == args.size()) return fail(std::string(name) + " needs a value");
      value = args[++i];
    }
    if (auto error = flag->second(o, value)) return fail(*error);
    rate_given |= name == "--rate";
    connections_given |= name == "--connections";
    duration_given |= name == "--duration";
  }
  if (o.closed_loop && rate_given) return fail("--rate and --closed-loop exclude each other");
  if (o.ramp) {
    if (!connections_given) o.connections = 50000;  // the ramp stops at its knee long before, usually
    if (!duration_given) o.duration = nanoseconds(0);
    if (o.ramp->start > o.connections)
      return fail("--ramp starts with " + std::to_string(o.ramp->start) + " connections, more than --connections " +
                  std::to_string(o.connections));
  }
  return out;
}

std::string usage() {
  return R"(usage: dumb_load [flags]
Load generator for DUMB servers (docs/PROTOCOL.md), on gort: N connections,
each sending requests at a fixed rate (open loop) or back to back (closed
loop), with latencies in a log-linear histogram.

  --host HOST             server address, IPv4 (default 127.0.0.1)
  --port PORT             server port (default 8090)
  --connections N         connections to open, gradually (default 100; max 100000)
  --duration D            how long to send (default 10s); with --ramp, an overall bound
  --rate R                requests per connection per second, open loop (default 10:
                          one every 100 ms).  Latency counts from the intended send
                          time, so a server that falls behind cannot hide its
                          queueing (no coordinated omission).
  --closed-loop           instead: each connection sends its next request as soon
                          as the reply to the previous one is in
  --cmd "REQUEST"         a request line (default "BURN 300"); repeat for a mix,
                          sent round-robin.  Any DUMB request; STREAM replies are
                          read fully.  A wrong reply counts as an error.
  --timeout D             per request, from its send (default 3s); counted as a
                          timeout.  After a timeout or error the connection is
                          closed and redialled after a short backoff.
  --dial-concurrency K    dials in flight at once (default 200)
  --ramp START:STEP:SECS  start with START connections, add STEP every SECS seconds
                          until a step's p99 exceeds --max-p99 or its errors and
                          timeouts exceed --max-errors of its requests, or
                          --connections is reached; reports the knee
  --max-p99 D             ramp bound on a step's p99 (default 100ms)
  --max-errors F          ramp bound on a step's (errors+timeouts)/requests (default 0.01)
  --progress              a line per second on stderr (automatic when stderr is a terminal)
  --json                  the summary as one JSON object on stdout
  --workers N             gort worker threads (default: CPUs, or GORT_PROCS)
  --debug-addr HOST:PORT  serve /metrics (the runtime's and dumb_load's own requests,
                          errors, connections and latency) and a live page there
  --help                  print this and exit

The summary gives latency percentiles over the whole run (dialling included)
and, without --ramp, over the steady state: the requests answered once every
connection was up.  Open loop, it also gives the send lag, how late dumb_load
itself sent each request: a tail there is the load generator's, not the
server's.

Durations: 10 (seconds), 2.5s, 250ms, 100us, 1m.  Exit status: 2 on a bad
flag; otherwise 0 when every request succeeded (with --ramp: when the ramp
ran), 1 when any failed or timed out or nothing could connect.
)";
}

}  // namespace load
