// debug_server.cpp: gort::debug::serve (net/include/gort/net/debug.h).
// An acceptor fiber and a fiber per connection, at most kMaxRequestsInFlight
// at once; each connection reads one request head (bounded in size and
// time), answers it and closes. close() closes the listener and waits on a
// WaitGroup for every fiber it started.

#include <gort/net/debug.h>

#include <atomic>

#include <gort/gort.h>
#include <gort/net/tcp.h>

namespace gort::debug {

namespace detail {
extern const std::string_view kDebugPage;
}

using namespace std::chrono_literals;
using gort::net::Conn;

// Requests served at once; past it a request gets 503 at once (a debug page
// must not be a way to use up the program's descriptors or memory).
constexpr int kMaxRequestsInFlight = 32;

struct DebugServer::State {
  gort::net::Listener listener;
  std::string address;
  DebugOptions options;
  gort::WaitGroup fibers;  // the acceptor and every connection
  std::atomic<int> in_flight{0};
  bool closed = false;
};

namespace {

void respond(Conn& c, int status, const char* reason, std::string_view type, std::string_view body, bool head_only) {
  std::string out = "HTTP/1.1 " + std::to_string(status) + " " + reason + "\r\nContent-Type: " + std::string(type) +
                    "\r\nContent-Length: " + std::to_string(body.size()) +
                    "\r\nCache-Control: no-store\r\nConnection: close\r\n\r\n";
  if (!head_only) out.append(body);
  (void)c.write_all(out);
}

void serve_one(DebugServer::State& s, Conn c) {
  c.set_deadline(gort::net::Clock::now() + 5s);  // a stalled client does not hold close() up for long
  std::string bytes;
  RequestHead head;
  char buf[2048];
  while ((head = parse_request_head(bytes)).status == RequestHead::kIncomplete) {
    auto n = c.read(buf, sizeof buf);
    if (!n || *n == 0) return;
    bytes.append(buf, *n);
  }
  const char* text = "text/plain; charset=utf-8";
  if (head.status == RequestHead::kTooLarge)
    return respond(c, 431, "Request Header Fields Too Large", text, "request head too large\n", false);
  if (head.status == RequestHead::kBad) return respond(c, 400, "Bad Request", text, "malformed request\n", false);
  bool head_only = head.method == "HEAD";
  if (head.method != "GET" && !head_only)
    return respond(c, 405, "Method Not Allowed", text, "GET or HEAD only\n", false);
  if (head.path == "/metrics") {
    std::string page = prometheus_text();
    if (s.options.extra_metrics) page += s.options.extra_metrics();
    return respond(c, 200, "OK", "text/plain; version=0.0.4; charset=utf-8", page, head_only);
  }
  if (head.path == "/debug/fibers") return respond(c, 200, "OK", text, fibers_text(), head_only);
  if (head.path == "/") return respond(c, 200, "OK", "text/html; charset=utf-8", detail::kDebugPage, head_only);
  respond(c, 404, "Not Found", text, "not found: try /, /metrics or /debug/fibers\n", head_only);
}

}  // namespace

gort::net::Result<std::unique_ptr<DebugServer>> serve(std::string_view address, DebugOptions options) {
  auto ln = gort::net::listen_tcp(address);
  if (!ln) return ln.error();
  auto s = std::make_shared<DebugServer::State>();
  s->address = ln->local_address()->to_string();
  s->listener = std::move(*ln);
  s->options = std::move(options);
  s->fibers.add(1);
  gort::spawn(gort::SpawnOptions{.name = "debug acceptor"}, [s] {
    for (;;) {
      auto c = s->listener.accept();
      if (!c) {
        if (c.error() == gort::net::Errc::kClosed) break;
        gort::sleep_for(10ms);  // a persistent error must not spin
        continue;
      }
      if (s->in_flight.fetch_add(1, std::memory_order_relaxed) >= kMaxRequestsInFlight) {
        s->in_flight.fetch_sub(1, std::memory_order_relaxed);
        c->set_write_deadline(gort::net::Clock::now() + 100ms);
        respond(*c, 503, "Service Unavailable", "text/plain; charset=utf-8", "too many debug requests at once\n",
                false);
        continue;  // the Conn closes here
      }
      s->fibers.add(1);
      gort::spawn(
          gort::SpawnOptions{.name = "debug request"},
          [s](Conn conn) {
            serve_one(*s, std::move(conn));
            s->in_flight.fetch_sub(1, std::memory_order_relaxed);
            s->fibers.done();
          },
          std::move(*c));
    }
    s->fibers.done();
  });
  return std::unique_ptr<DebugServer>(new DebugServer(s));
}

std::string DebugServer::address() const { return state_->address; }

void DebugServer::close() {
  if (state_->closed) return;
  state_->closed = true;
  (void)state_->listener.close();
  state_->fibers.wait();
}

DebugServer::~DebugServer() { close(); }

}  // namespace gort::debug
