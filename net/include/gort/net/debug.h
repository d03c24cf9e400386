// debug.h: a running program's debug endpoint, served by its own fibers
// over gort::net (brpc's built-in portal, Go's net/http/pprof).
//
//   auto server = gort::debug::serve("127.0.0.1:6060");   // in a fiber
//   ...                                                   // curl 127.0.0.1:6060/metrics
//   server->close();                                      // before gort::run returns
//
//   /metrics        gort::debug::prometheus_text() (Prometheus scrapes it)
//   /debug/fibers   gort::debug::fibers_text(): every fiber and what it
//                   waits on (<gort/debug.h>), as text/plain
//   /               one self-contained HTML page (no external fetches) that
//                   polls /metrics every second and charts fibers,
//                   switches/s, run-queue depth per worker, network polls/s,
//                   stacks in use and stuck episodes
//   extra pages     DebugOptions::pages: a path and a function returning
//                   Prometheus text, appended to /metrics (dumb_load's own
//                   figures), or a whole page
//
// HTTP/1.1, GET and HEAD only, one request per connection (Connection:
// close): a debug page is polled once a second, keep-alive buys nothing.
// A request head over 8 KiB is refused (431), a malformed one gets 400,
// another method 405, an unknown path 404; past 32 requests at once a new
// one gets 503. Meant for loopback or a trusted
// network: it has no authentication, like Go's pprof handlers.
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include <gort/net/result.h>

namespace gort::debug {

struct DebugOptions {
  // Appended to /metrics: more series in Prometheus text (each with its
  // HELP and TYPE lines).
  std::function<std::string()> extra_metrics;
};

class DebugServer {
 public:
  ~DebugServer();  // close()s
  // The address it listens on ("127.0.0.1:6060"; port 0 picks one).
  std::string address() const;
  // Stops accepting and waits for the requests in progress.
  void close();

  struct State;

 private:
  friend gort::net::Result<std::unique_ptr<DebugServer>> serve(std::string_view, DebugOptions);
  explicit DebugServer(std::shared_ptr<State> s) : state_(std::move(s)) {}
  std::shared_ptr<State> state_;
};

// Listens on `address` and serves in fibers of the running runtime.
gort::net::Result<std::unique_ptr<DebugServer>> serve(std::string_view address, DebugOptions options = {});

// The request head parser the server uses (no I/O): method and path of a
// complete head ("GET /metrics HTTP/1.1\r\n...\r\n\r\n"), or why not.
struct RequestHead {
  enum Status { kOk, kIncomplete, kBad, kTooLarge } status = kIncomplete;
  std::string method;
  std::string path;  // without the query string
};
RequestHead parse_request_head(std::string_view bytes);
inline constexpr std::size_t kMaxRequestHead = 8192;

}  // namespace gort::debug
