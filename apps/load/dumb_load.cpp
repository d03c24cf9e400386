// dumb_load -- the c10k load generator for DUMB servers, on gort.
//
// Design.  One fiber per connection, straight-line: dial, then loop {wait
// for the next send time, write the request, read the whole reply, record
// the latency}.  The main fiber is the controller: it spawns connections
// (all at once, or step by step with --ramp), prints progress once a
// second, decides when to stop, and prints the summary.
//
//  * Open loop (default): connection i sends at t_i + k/rate, with t_i its
//    first send after a random phase in [0, 1/rate), so the connections do
//    not fire in lockstep.  Latency is measured from the *intended* send
//    time: when a reply is late, the next requests go out at once and their
//    latency includes the time they spent waiting to be sent -- a stalled
//    server cannot hide its queueing (no coordinated omission; wrk2's rule).
//    --closed-loop instead sends the next request when the reply is in.
//  * Timeouts: a request's I/O deadline is its actual send + --timeout.  A
//    timeout or an error closes the connection; it redials after a backoff
//    (50 ms doubling to 1 s, jittered) and its schedule restarts from now.
//  * Dials: at most --dial-concurrency at once, through a channel used as a
//    semaphore, so 50 000 connections do not hit the listener's SYN backlog
//    all at once.
//  * Replies: each request line's expected reply is computed once from the
//    protocol module (a STREAM's n bytes are read and counted, then DONE);
//    anything else is an error.
//  * Send lag (open loop): how late dumb_load itself sent each request after
//    its intended time -- its own queueing, which the latency includes.  A
//    tail in the latency that is also in the send lag is the load
//    generator's, not the server's.
//  * Latencies go to kShards relaxed-atomic histograms (histogram.h),
//    connection i to shard i % kShards; the controller merges snapshots and
//    subtracts the previous one for the last second or the last ramp step.
//
// Stop: at --duration (or the ramp's end, or SIGINT/SIGTERM, which set a
// flag) the controller sets `stopping`; connections finish the request in
// flight (bounded by --timeout) and end.  The controller waits for them for
// --timeout plus a second, then reports; if some are still stuck (a dial
// the kernel holds), it reports anyway and exits without tearing them down.
// Shared state lives on the main fiber's stack, which outlives every
// connection fiber: each fiber's decrement of `active` is its last access.

#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <map>
#include <memory>
#include <optional>
#include <random>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include <gort/gort.h>
#include <gort/net.h>

#include "dumb/protocol.h"
#include "load/histogram.h"
#include "load/options.h"
#include "load/ramp.h"
#include "load/report.h"

namespace {

using namespace std::chrono_literals;
using gort::Clock;
using gort::net::Conn;
using load::Options;
using std::chrono::nanoseconds;

constexpr int kShards = 16;
constexpr int kSpareFds = 64;  // stdio, the runtime's epoll and eventfds, ...
constexpr auto kFirstBackoff = 50ms;
constexpr auto kMaxBackoff = 1s;
constexpr std::size_t kStreamScratch = 16 * 1024;

std::atomic<bool> g_interrupted{false};  // set by the SIGINT/SIGTERM handler

// A request line and what the server must answer.
struct Exchange {
  std::string request;             // with its "\n"
  std::uint64_t stream_bytes = 0;  // 'A's before the reply line (STREAM)
  std::string reply;               // the reply line, without "\n"
};

Exchange plan_exchange(const std::string& command) {
  Exchange e;
  e.request = command + "\n";
  std::string_view line = command;
  if (line.ends_with('\r')) line.remove_suffix(1);  // the framer drops one CR before LF
  dumb::Request request = dumb::parse(line);
  std::string scratch;
  if (const auto* burn = std::get_if<dumb::Burn>(&request)) {
    std::uint64_t n = burn->n;
    e.reply = dumb::format_result(n * (n + 1) / 2);
  } else if (const auto* stream = std::get_if<dumb::Stream>(&request)) {
    e.stream_bytes = stream->n;
    e.reply = std::string(dumb::kDone);
  } else {
    dumb::Action action = dumb::to_action(request, scratch);
    e.reply = action.kind == dumb::Action::Kind::kWait ? std::string(dumb::kDone) : std::string(action.reply);
  }
  e.reply.pop_back();  // the "\n"
  return e;
}

// Everything the connection fibers share with the controller.
struct Shared {
  explicit Shared(const Options& o)
      : options(o), address(o.host + ":" + std::to_string(o.port)), dial_slots(std::size_t(o.dial_concurrency)) {
    for (const auto& c : o.commands) exchanges.push_back(plan_exchange(c));
  }
  const Options& options;
  const std::string address;
  std::vector<Exchange> exchanges;
  gort::Chan<char> dial_slots;  // a semaphore: send to take a slot, receive to give it back
  std::array<load::Histogram, kShards> latency;
  std::array<load::Histogram, kShards> send_lag;  // open loop: actual send - intended send
  std::atomic<std::uint64_t> ok{0}, timeouts{0}, errors{0}, connect_failures{0};
  std::atomic<int> connected{0};
  std::atomic<int> active{0};  // connection fibers alive
  std::atomic<bool> stopping{false};
  gort::Mutex kinds_mutex;
  std::map<std::string, std::uint64_t> error_kinds;  // guarded by kinds_mutex

  void note_failure(const std::string& kind) {
    std::lock_guard lock(kinds_mutex);
    ++error_kinds[kind];
  }
  load::Totals totals() const {
    return {ok.load(std::memory_order_relaxed), timeouts.load(std::memory_order_relaxed),
            errors.load(std::memory_order_relaxed), connect_failures.load(std::memory_order_relaxed)};
  }
  load::HistogramData snapshot() const { return merged(latency); }
  load::HistogramData send_lag_snapshot() const { return merged(send_lag); }
  static load::HistogramData merged(const std::array<load::Histogram, kShards>& shards) {
    load::HistogramData all;
    for (const auto& shard : shards) shard.snapshot_into(all);
    return all;
  }
};

enum class Outcome { kOk, kTimeout, kError };

// One request and its reply.  On failure *why says what went wrong.
Outcome exchange(Conn& conn, const Exchange& e, Clock::time_point deadline, std::unique_ptr<char[]>& scratch,
                 std::string* why) {
  auto fail = [&](const gort::net::Error& error, const char* during) {
    if (error == gort::net::Errc::kTimeout) return Outcome::kTimeout;
    *why = std::string(during) + ": " + error.message();
    return Outcome::kError;
  };
  (void)conn.set_deadline(deadline);
  if (auto w = conn.write_all(e.request); !w) return fail(w.error(), "write");
  for (std::uint64_t left = e.stream_bytes; left > 0;) {
    if (!scratch) scratch = std::make_unique<char[]>(kStreamScratch);
    auto n = conn.read(scratch.get(), std::size_t(std::min<std::uint64_t>(left, kStreamScratch)));
    if (!n) return fail(n.error(), "read stream");
    left -= *n;
  }
  auto line = conn.read_line(4096);
  if (!line) return fail(line.error(), "read reply");
  if (*line != e.reply) {
    *why = "wrong reply '" + line->substr(0, 60) + "' to '" + e.request.substr(0, e.request.size() - 1) + "'";
    return Outcome::kError;
  }
  return Outcome::kOk;
}

// Takes a dial slot for its lifetime, unless the slots are closed (stop).
class DialSlot {
 public:
  explicit DialSlot(gort::Chan<char>& slots) : slots_(slots) {
    try {
      slots_.send(0);
      held_ = true;
    } catch (const gort::ChanClosed&) {
    }
  }
  ~DialSlot() {
    if (held_) (void)slots_.try_recv();
  }
  DialSlot(const DialSlot&) = delete;
  DialSlot& operator=(const DialSlot&) = delete;
  bool held() const noexcept { return held_; }

 private:
  gort::Chan<char>& slots_;
  bool held_ = false;
};

// Sleeps until t, waking early (every 100 ms at most) to notice a stop.
// False if stopping.
bool sleep_until(Shared& s, Clock::time_point t) {
  while (!s.stopping.load(std::memory_order_relaxed)) {
    auto now = Clock::now();
    if (now >= t) return true;
    gort::sleep_for(std::min<nanoseconds>(t - now, 100ms));
  }
  return false;
}

void run_connection(Shared& s, int index) {
  const Options& o = s.options;
  std::minstd_rand rng(std::uint32_t(index) * 2654435761u + 1);
  const auto interval = nanoseconds(std::int64_t(1e9 / o.rate));
  load::Histogram& latency = s.latency[std::size_t(index % kShards)];
  load::Histogram& send_lag = s.send_lag[std::size_t(index % kShards)];
  std::size_t next_command = std::size_t(index) % s.exchanges.size();
  std::unique_ptr<char[]> scratch;
  nanoseconds backoff = kFirstBackoff;
  std::string why;
  while (!s.stopping.load(std::memory_order_relaxed)) {
    gort::net::Result<Conn> conn = gort::net::Errc::kClosed;
    {
      DialSlot slot(s.dial_slots);
      if (!slot.held() || s.stopping.load(std::memory_order_relaxed)) break;
      conn = gort::net::dial_tcp(s.address, o.timeout);
    }
    bool failed = false;
    if (!conn) {
      s.connect_failures.fetch_add(1, std::memory_order_relaxed);
      s.note_failure("connect: " + conn.error().message());
      failed = true;
    } else {
      s.connected.fetch_add(1, std::memory_order_relaxed);
      backoff = kFirstBackoff;
      // The schedule (re)starts now, at a random phase within one interval.
      auto next_send = Clock::now() + nanoseconds(std::int64_t(rng() % std::uint64_t(interval.count() + 1)));
      for (;;) {
        Clock::time_point intended;
        if (o.closed_loop) {
          intended = Clock::now();
        } else {
          if (!sleep_until(s, next_send)) break;
          intended = next_send;
          next_send += interval;
        }
        if (s.stopping.load(std::memory_order_relaxed)) break;
        const Exchange& e = s.exchanges[next_command];
        next_command = (next_command + 1) % s.exchanges.size();
        const auto sent = Clock::now();
        if (!o.closed_loop)
          send_lag.record(std::uint64_t(std::chrono::duration_cast<nanoseconds>(sent - intended).count()));
        Outcome r = exchange(*conn, e, sent + o.timeout, scratch, &why);
        if (r == Outcome::kOk) {
          latency.record(std::uint64_t(std::chrono::duration_cast<nanoseconds>(Clock::now() - intended).count()));
          s.ok.fetch_add(1, std::memory_order_relaxed);
          continue;
        }
        if (r == Outcome::kTimeout) {
          s.timeouts.fetch_add(1, std::memory_order_relaxed);
        } else {
          s.errors.fetch_add(1, std::memory_order_relaxed);
          s.note_failure(why);
        }
        failed = true;
        break;
      }
      s.connected.fetch_sub(1, std::memory_order_relaxed);
      (void)conn->close();
    }
    if (failed) {
      auto jittered = backoff / 2 + nanoseconds(std::int64_t(rng() % std::uint64_t(backoff.count() / 2 + 1)));
      if (!sleep_until(s, Clock::now() + jittered)) break;
      backoff = std::min<nanoseconds>(backoff * 2, kMaxBackoff);
    }
  }
}

void spawn_connections(Shared& s, int from, int to) {
  for (int i = from; i < to; ++i) {
    s.active.fetch_add(1, std::memory_order_relaxed);
    go_spawn([&s, i] {
      run_connection(s, i);
      s.active.fetch_sub(1, std::memory_order_release);  // last access; pairs with the controller's acquire
    });
  }
}

// dumb_load's own series for --debug-addr's /metrics, in Prometheus text:
// what the course's load client exports for its dashboard.
std::string load_metrics(const Shared& s) {
  load::Totals t = s.totals();
  load::HistogramData latency = s.snapshot();
  std::string out;
  char line[256];
  auto add = [&](const char* fmt, auto... a) {
    std::snprintf(line, sizeof line, fmt, a...);
    out += line;
  };
  out += "# HELP dumb_load_requests_total Requests sent, by outcome.\n# TYPE dumb_load_requests_total counter\n";
  add("dumb_load_requests_total{outcome=\"ok\"} %llu\n", (unsigned long long)t.ok);
  add("dumb_load_requests_total{outcome=\"timeout\"} %llu\n", (unsigned long long)t.timeouts);
  add("dumb_load_requests_total{outcome=\"error\"} %llu\n", (unsigned long long)t.errors);
  out +=
      "# HELP dumb_load_connect_failures_total Dials that failed.\n# TYPE dumb_load_connect_failures_total counter\n";
  add("dumb_load_connect_failures_total %llu\n", (unsigned long long)t.connect_failures);
  out += "# HELP dumb_load_connections Connections open now.\n# TYPE dumb_load_connections gauge\n";
  add("dumb_load_connections %d\n", s.connected.load(std::memory_order_relaxed));
  out +=
      "# HELP dumb_load_latency_seconds Latency of the answered requests since the start.\n"
      "# TYPE dumb_load_latency_seconds summary\n";
  for (double q : {0.5, 0.9, 0.99, 0.999})
    add("dumb_load_latency_seconds{quantile=\"%g\"} %.9f\n", q, double(latency.percentile(q)) / 1e9);
  add("dumb_load_latency_seconds_sum %.9f\n", latency.mean() * double(latency.count()) / 1e9);
  add("dumb_load_latency_seconds_count %llu\n", (unsigned long long)latency.count());
  return out;
}

// The controller: spawns, reports progress, runs the ramp, stops.
class Controller {
 public:
  explicit Controller(Shared& s)
      : s_(s),
        o_(s.options),
        knee_(std::uint64_t(o_.max_p99.count()), o_.max_errors),
        live_(isatty(STDERR_FILENO) == 1),
        progress_(live_ || o_.progress) {}

  int run() {
    start_ = Clock::now();
    int target = o_.ramp ? o_.ramp->start : o_.connections;
    spawn_connections(s_, 0, target);
    auto end = o_.duration.count() > 0 ? start_ + o_.duration : Clock::time_point::max();
    auto next_tick = start_ + 1s;
    auto step_end = o_.ramp ? start_ + o_.ramp->period : Clock::time_point::max();
    load::HistogramData last = s_.snapshot();
    load::Totals last_totals{};
    load::HistogramData step_start = last;
    load::Totals step_totals{};
    for (;;) {
      auto wake = std::min({next_tick, step_end, end});
      while (Clock::now() < wake && !g_interrupted.load(std::memory_order_relaxed))
        gort::sleep_for(std::min<nanoseconds>(wake - Clock::now(), 100ms));
      if (g_interrupted.load(std::memory_order_relaxed)) {
        interrupted_ = true;
        break;
      }
      auto now = Clock::now();
      peak_ = std::max(peak_, s_.connected.load(std::memory_order_relaxed));
      if (now >= next_tick) {
        load::HistogramData current = s_.snapshot();
        load::Totals totals = s_.totals();
        if (progress_) print_progress(current.since(last), totals.ok - last_totals.ok, totals, target);
        // The steady state starts at the first tick with every connection up
        // (bench/servers' measured window starts at the same progress line).
        if (!o_.ramp && !all_up_ && s_.connected.load(std::memory_order_relaxed) >= o_.connections) {
          all_up_ = current;
          all_up_s_ = std::chrono::duration<double>(now - start_).count();
        }
        last = std::move(current);
        last_totals = totals;
        next_tick += 1s;
      }
      if (now >= end) break;
      if (now >= step_end) {
        load::HistogramData current = s_.snapshot();
        load::Totals totals = s_.totals();
        if (!ramp_step(current.since(step_start), totals, step_totals, target)) break;
        step_start = std::move(current);
        step_totals = totals;
        int more = std::min(o_.ramp->step, o_.connections - target);
        spawn_connections(s_, target, target + more);
        target += more;
        step_end = now + o_.ramp->period;
      }
    }
    return finish();
  }

 private:
  // Records a finished step; false when the ramp is over.
  bool ramp_step(const load::HistogramData& step, const load::Totals& now, const load::Totals& before, int target) {
    load::StepResult r;
    r.connections = target;
    r.requests = now.requests() - before.requests();
    r.failures = (now.timeouts - before.timeouts) + (now.errors - before.errors);
    r.p99_ns = step.percentile(0.99);
    r.throughput = double(now.ok - before.ok) / std::chrono::duration<double>(o_.ramp->period).count();
    bool within = knee_.add(r);
    if (progress_ || !o_.json) {
      end_live_line();
      std::fprintf(stderr, "ramp: %d connections: %.0f req/s, p99 %s, %llu failures of %llu: %s\n", target,
                   r.throughput, load::format_ms(r.p99_ns).c_str(), (unsigned long long)r.failures,
                   (unsigned long long)r.requests, within ? "within bounds" : knee_.reason().c_str());
    }
    return within && target < o_.connections;
  }

  void print_progress(const load::HistogramData& second, std::uint64_t ok_in_second, const load::Totals& totals,
                      int target) {
    double elapsed = std::chrono::duration<double>(Clock::now() - start_).count();
    std::string line = load::progress_line(elapsed, s_.connected.load(std::memory_order_relaxed), target, totals,
                                           double(ok_in_second), second);
    if (live_) {
      std::fprintf(stderr, "\r%s\x1b[K", line.c_str());
      line_open_ = true;
    } else {
      std::fprintf(stderr, "%s\n", line.c_str());
    }
    std::fflush(stderr);
  }

  void end_live_line() {
    if (line_open_) std::fprintf(stderr, "\n");
    line_open_ = false;
  }

  int finish() {
    auto stopped = Clock::now();
    s_.stopping.store(true, std::memory_order_relaxed);
    s_.dial_slots.close();  // fibers waiting for a slot wake and give up (DialSlot)
    bool all_done = wait_for_fibers(stopped + s_.options.timeout + 1s);
    end_live_line();
    load::Summary summary;
    summary.options = &o_;
    summary.elapsed_s = std::chrono::duration<double>(stopped - start_).count();
    summary.totals = s_.totals();
    summary.latency = s_.snapshot();
    summary.send_lag = s_.send_lag_snapshot();
    if (all_up_) {
      summary.latency_all_up = summary.latency.since(*all_up_);
      summary.all_up_s = all_up_s_;
    }
    summary.connections_peak = peak_;
    {
      std::lock_guard lock(s_.kinds_mutex);
      summary.error_kinds = s_.error_kinds;
    }
    summary.ramp = o_.ramp ? &knee_ : nullptr;
    summary.interrupted = interrupted_;
    if (o_.json)
      load::print_json(stdout, summary);
    else
      load::print_summary(stdout, summary);
    std::fflush(stdout);
    int status = exit_status(summary);
    if (!all_done) {
      std::fprintf(stderr, "dumb_load: %d connections did not finish in time; exiting anyway\n",
                   s_.active.load(std::memory_order_relaxed));
      std::fflush(stderr);
      std::_Exit(status);  // tearing the runtime down under them would be worse
    }
    return status;
  }

  bool wait_for_fibers(Clock::time_point deadline) {
    while (s_.active.load(std::memory_order_acquire) > 0) {
      if (Clock::now() >= deadline) return false;
      gort::sleep_for(10ms);
    }
    return true;
  }

  int exit_status(const load::Summary& summary) const {
    if (o_.ramp) return knee_.steps() > 0 ? 0 : 1;
    const load::Totals& t = summary.totals;
    return t.ok > 0 && t.timeouts == 0 && t.errors == 0 && t.connect_failures == 0 ? 0 : 1;
  }

  Shared& s_;
  const Options& o_;
  load::KneeFinder knee_;
  const bool live_;      // stderr is a terminal: one line rewritten in place
  const bool progress_;  // print progress at all
  bool line_open_ = false;
  bool interrupted_ = false;
  int peak_ = 0;
  std::optional<load::HistogramData> all_up_;  // latencies up to the first tick with every connection up
  double all_up_s_ = 0;                        // that tick, seconds from the start
  Clock::time_point start_;
};

// Raises the soft descriptor limit to what the run needs (at most the hard
// limit).  False, with a message, if the hard limit is too low.
bool ensure_fd_limit(int connections) {
  rlimit rl{};
  if (getrlimit(RLIMIT_NOFILE, &rl) != 0) return true;
  rlim_t need = rlim_t(connections) + kSpareFds;
  if (rl.rlim_cur < need && rl.rlim_cur < rl.rlim_max) {
    rl.rlim_cur = std::min(need, rl.rlim_max);
    setrlimit(RLIMIT_NOFILE, &rl);
  }
  if (rl.rlim_max != RLIM_INFINITY && rl.rlim_max < need) {
    std::fprintf(stderr,
                 "dumb_load: %d connections need %llu file descriptors, but the hard limit (ulimit -Hn) is %llu.\n"
                 "Raise it (as root: ulimit -Hn %llu, or LimitNOFILE= in systemd, or nofile in "
                 "/etc/security/limits.conf), or use --connections %llu or fewer.\n",
                 connections, (unsigned long long)need, (unsigned long long)rl.rlim_max, (unsigned long long)need,
                 (unsigned long long)(rl.rlim_max > kSpareFds ? rl.rlim_max - kSpareFds : 0));
    return false;
  }
  return true;
}

// One server address gives a client at most as many connections as there
// are ephemeral ports; warn before the dials start failing.
void warn_about_ports(int connections) {
  std::ifstream range("/proc/sys/net/ipv4/ip_local_port_range");
  long low = 0, high = 0;
  if (range >> low >> high && connections > high - low + 1)
    std::fprintf(stderr,
                 "dumb_load: warning: %d connections to one address, but only %ld ephemeral ports "
                 "(net.ipv4.ip_local_port_range %ld %ld); widen the range or expect connect failures\n",
                 connections, high - low + 1, low, high);
}

void on_stop_signal(int) { g_interrupted.store(true, std::memory_order_relaxed); }

}  // namespace

int main(int argc, char** argv) {
  std::vector<std::string_view> args(argv + 1, argv + argc);
  load::ParseOutcome parsed = load::parse_options(args);
  if (parsed.kind == load::ParseOutcome::Kind::kHelp) {
    std::fputs(load::usage().c_str(), stdout);
    return 0;
  }
  if (parsed.kind == load::ParseOutcome::Kind::kError) {
    std::fprintf(stderr, "dumb_load: %s\ntry 'dumb_load --help'\n", parsed.error.c_str());
    return 2;
  }
  const Options& options = parsed.options;
  if (!ensure_fd_limit(options.connections)) return 1;
  warn_about_ports(options.connections);
  std::signal(SIGPIPE, SIG_IGN);
  std::signal(SIGINT, on_stop_signal);
  std::signal(SIGTERM, on_stop_signal);
  gort::Config config;
  config.workers = options.workers;
  return gort::run(config, [&] {
    Shared shared(options);
    std::unique_ptr<gort::debug::DebugServer> debug;
    if (!options.debug_addr.empty()) {
      gort::debug::DebugOptions debug_options;
      debug_options.extra_metrics = [&shared] { return load_metrics(shared); };
      auto started = gort::debug::serve(options.debug_addr, debug_options);
      if (!started) {
        std::fprintf(stderr, "dumb_load: cannot serve --debug-addr %s: %s\n", options.debug_addr.c_str(),
                     started.error().message().c_str());
        return 1;
      }
      debug = std::move(*started);
    }
    int status = Controller(shared).run();
    if (debug) debug->close();
    return status;
  });
}
