// load/report.cpp -- see report.h.

#include "load/report.h"

#include <string_view>

namespace load {

namespace {

std::string json_string(std::string_view s) {
  std::string out = "\"";
  for (char c : s) {
    if (c == '"' || c == '\\') {
      out += '\\';
      out += c;
    } else if (static_cast<unsigned char>(c) < 0x20) {
      char buf[8];
      std::snprintf(buf, sizeof buf, "\\u%04x", c);
      out += buf;
    } else {
      out += c;
    }
  }
  return out + "\"";
}

double ms(std::uint64_t ns) { return double(ns) / 1e6; }

// "p50 X  p90 X  p99 X  p99.9 X  max X": a latency line of the summary.
std::string percentiles_text(const HistogramData& h) {
  return "p50 " + format_ms(h.percentile(0.50)) + "  p90 " + format_ms(h.percentile(0.90)) + "  p99 " +
         format_ms(h.percentile(0.99)) + "  p99.9 " + format_ms(h.percentile(0.999)) + "  max " + format_ms(h.max());
}

// "p50":..,"p90":..,"p99":..,"p999":..,"max":.. in ms: the members every
// latency object of the JSON summary has.
std::string percentiles_json(const HistogramData& h) {
  char buf[160];
  std::snprintf(buf, sizeof buf, "\"p50\":%.3f,\"p90\":%.3f,\"p99\":%.3f,\"p999\":%.3f,\"max\":%.3f",
                ms(h.percentile(0.5)), ms(h.percentile(0.9)), ms(h.percentile(0.99)), ms(h.percentile(0.999)),
                ms(h.max()));
  return buf;
}

void print_step_json(std::FILE* out, const char* name, const std::optional<StepResult>& step) {
  if (!step) {
    std::fprintf(out, "\"%s\":null", name);
    return;
  }
  std::fprintf(out,
               "\"%s\":{\"connections\":%d,\"requests\":%llu,\"failures\":%llu,\"p99_ms\":%.3f,\"throughput\":%.1f}",
               name, step->connections, (unsigned long long)step->requests, (unsigned long long)step->failures,
               ms(step->p99_ns), step->throughput);
}

}  // namespace

std::string format_ms(std::uint64_t ns) {
  char buf[32];
  std::snprintf(buf, sizeof buf, ns < 10'000'000 ? "%.3f ms" : "%.1f ms", ms(ns));
  return buf;
}

void print_summary(std::FILE* out, const Summary& s) {
  const Options& o = *s.options;
  std::fprintf(out, "dumb_load: %s:%u, %s%d connections, ", o.host.c_str(), o.port, o.ramp ? "up to " : "",
               o.connections);
  if (o.closed_loop)
    std::fprintf(out, "closed loop");
  else
    std::fprintf(out, "open loop at %g requests/s per connection", o.rate);
  std::fprintf(out, ", %.1f s%s\n", s.elapsed_s, s.interrupted ? " (interrupted)" : "");
  std::fprintf(out, "  requests     ");
  for (std::size_t i = 0; i < o.commands.size(); ++i)
    std::fprintf(out, "%s\"%s\"", i ? ", " : "", o.commands[i].c_str());
  std::fprintf(out, "\n");
  const Totals& t = s.totals;
  std::fprintf(out, "  completed    %llu ok, %llu timeouts, %llu errors, %llu connect failures (peak %d connections)\n",
               (unsigned long long)t.ok, (unsigned long long)t.timeouts, (unsigned long long)t.errors,
               (unsigned long long)t.connect_failures, s.connections_peak);
  std::fprintf(out, "  throughput   %.0f requests/s\n", s.elapsed_s > 0 ? double(t.ok) / s.elapsed_s : 0.0);
  const HistogramData& h = s.latency;
  std::fprintf(out, "  latency      %s  (mean %s%s)\n", percentiles_text(h).c_str(),
               format_ms(std::uint64_t(h.mean())).c_str(), o.closed_loop ? "" : "; from the intended send time");
  if (s.latency_all_up)
    std::fprintf(out, "  all up       %s  (from %.0f s, when every connection was up)\n",
                 percentiles_text(*s.latency_all_up).c_str(), s.all_up_s);
  if (!o.closed_loop && s.send_lag.count() > 0)
    std::fprintf(out, "  send lag     %s  (dumb_load's own delay, in the latency)\n",
                 percentiles_text(s.send_lag).c_str());
  for (const auto& [kind, n] : s.error_kinds)
    std::fprintf(out, "  failure      %llu x %s\n", (unsigned long long)n, kind.c_str());
  if (s.ramp) {
    const KneeFinder& r = *s.ramp;
    if (r.knee())
      std::fprintf(out, "  knee         %d connections: %.0f requests/s, p99 %s\n", r.knee()->connections,
                   r.knee()->throughput, format_ms(r.knee()->p99_ns).c_str());
    else
      std::fprintf(out, "  knee         none: the first step was already out of bounds\n");
    if (r.broken())
      std::fprintf(out, "  broke at     %d connections: %s\n", r.broken()->connections, r.reason().c_str());
    else
      std::fprintf(out, "  broke at     not reached (%d steps within bounds)\n", r.steps());
  }
}

void print_json(std::FILE* out, const Summary& s) {
  const Options& o = *s.options;
  const Totals& t = s.totals;
  const HistogramData& h = s.latency;
  std::fprintf(out, "{\"host\":%s,\"port\":%u,\"connections\":%d,\"mode\":\"%s\",\"rate\":%g,\"commands\":[",
               json_string(o.host).c_str(), o.port, o.connections, o.closed_loop ? "closed" : "open",
               o.closed_loop ? 0.0 : o.rate);
  for (std::size_t i = 0; i < o.commands.size(); ++i)
    std::fprintf(out, "%s%s", i ? "," : "", json_string(o.commands[i]).c_str());
  std::fprintf(out,
               "],\"elapsed_s\":%.3f,\"interrupted\":%s,\"requests\":%llu,\"ok\":%llu,\"timeouts\":%llu,"
               "\"errors\":%llu,\"connect_failures\":%llu,\"connections_peak\":%d,\"throughput\":%.1f,",
               s.elapsed_s, s.interrupted ? "true" : "false", (unsigned long long)t.requests(),
               (unsigned long long)t.ok, (unsigned long long)t.timeouts, (unsigned long long)t.errors,
               (unsigned long long)t.connect_failures, s.connections_peak,
               s.elapsed_s > 0 ? double(t.ok) / s.elapsed_s : 0.0);
  std::fprintf(out, "\"latency_ms\":{%s,\"mean\":%.3f},", percentiles_json(h).c_str(), h.mean() / 1e6);
  if (s.latency_all_up)
    std::fprintf(out, "\"all_up_s\":%.3f,\"latency_all_up_ms\":{\"requests\":%llu,%s},", s.all_up_s,
                 (unsigned long long)s.latency_all_up->count(), percentiles_json(*s.latency_all_up).c_str());
  if (!o.closed_loop) std::fprintf(out, "\"send_lag_ms\":{%s},", percentiles_json(s.send_lag).c_str());
  std::fprintf(out, "\"failures\":{");
  bool first = true;
  for (const auto& [kind, n] : s.error_kinds) {
    std::fprintf(out, "%s%s:%llu", first ? "" : ",", json_string(kind).c_str(), (unsigned long long)n);
    first = false;
  }
  std::fprintf(out, "}");
  if (s.ramp) {
    std::fprintf(out, ",\"ramp\":{\"steps\":%d,", s.ramp->steps());
    print_step_json(out, "knee", s.ramp->knee());
    std::fprintf(out, ",");
    print_step_json(out, "broken", s.ramp->broken());
    std::fprintf(out, ",\"reason\":%s}", json_string(s.ramp->reason()).c_str());
  }
  std::fprintf(out, "}\n");
}

std::string progress_line(double elapsed_s, int connected, int target, const Totals& totals, double rate,
                          const HistogramData& last_second) {
  char buf[256];
  std::snprintf(buf, sizeof buf,
                "[%5.0fs] conns %d/%d  %.0f req/s  p50 %s  p99 %s  | ok %llu  timeouts %llu  errors %llu  "
                "connect failures %llu",
                elapsed_s, connected, target, rate, format_ms(last_second.percentile(0.5)).c_str(),
                format_ms(last_second.percentile(0.99)).c_str(), (unsigned long long)totals.ok,
                (unsigned long long)totals.timeouts, (unsigned long long)totals.errors,
                (unsigned long long)totals.connect_failures);
  return buf;
}

}  // namespace load
