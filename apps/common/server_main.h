// common/server_main.h -- what every server binary shares: flags, the listening
// socket, big stacks, and the stop protocol.  A server file is then only its
// own accept/read/write loop:
//
//     static void serve(common::ServerContext& ctx) { ... }
//     int main(int argc, char** argv) { return common::server_main(argc, argv, "dumb_epoll", serve); }
//
// Flags: --host H (127.0.0.1), --port P (8090 for DUMB, 8091 for chat; 0
// picks a free port), --drain-ms D (2000), --workers N (servers that have
// workers), --help.  A bad flag prints an error and exits 2.  Once listening,
// the binary prints "<name> listening on <host>:<port>" on stdout (the test
// harness reads the port from it).
//
// Stop protocol (SIGINT or SIGTERM):
//   1. A signal thread (the only thread that takes the signals: they are
//      blocked everywhere else) sets stopping(), makes stop_fd() readable,
//      shuts the listener down (a blocking accept_connection's poll()
//      returns and accept4 fails; epoll/select see the listener hang up)
//      and shuts down the read side of every tracked connection (a blocked
//      read() returns 0, an event loop sees EOF).
//   2. Each connection finishes the request it is executing, then closes:
//      servers check stopping() before starting the next request.
//   3. serve() returns once its connections are closed; the process exits 0.
//      If that takes longer than --drain-ms (a client not reading its
//      STREAM, a long WAIT), the signal thread exits the process with 0
//      anyway: the drain is bounded.
// Rejected: a self-pipe written from a signal handler -- sigwait() in a thread
// may call anything (shutdown, mutexes), a handler may not.

#pragma once

#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <mutex>
#include <string>
#include <unordered_set>

#include <pthread.h>
#include <signal.h>

#include "common/servers.h"

namespace common {

// Stack for every thread that may run BURN 10000 (~2.8 MB in an optimised
// build, ~4.8 MB under ASan): the event loops, connection threads, workers
// and helpers.  Only the pages touched are committed.
#ifdef GORT_SANITIZER_BUILD
inline constexpr std::size_t kServerStackBytes = 16u << 20;
#else
inline constexpr std::size_t kServerStackBytes = 8u << 20;
#endif

struct ServerConfig {
  std::string host = "127.0.0.1";
  std::uint16_t port = 0;
  int workers = 0;                        // threads or processes; 0 if the server has none
  std::chrono::milliseconds drain{2000};  // bound on the stop's drain
  // Servers with connection limits (ServerTraits::connection_limits):
  int max_connections = 0;                    // past it a new client is told kServerBusy and closed
  std::chrono::milliseconds idle_timeout{0};  // a connection silent this long is closed; 0: never
  std::string debug_addr;                     // ServerTraits::debug_endpoint: --debug-addr HOST:PORT ("": none)
  std::string redis;                          // ServerTraits::redis_bus: --redis HOST:PORT ("": none)
  bool reuseport = false;  // ServerTraits::debug_endpoint: --reuseport, share the port with other processes
};

// What a server file tells server_main besides its name.
struct ServerTraits {
  int default_workers = 0;        // 0: the server takes no --workers flag
  const char* workers_help = "";  // what --workers counts, for --help
  // Takes --max-connections and --idle-timeout (docs/SERVERS.md, "Limits").
  bool connection_limits = false;
  std::chrono::milliseconds default_idle_timeout{0};  // 0: no idle timeout unless asked
  // Takes --debug-addr (gort::debug::serve: /metrics and a live page) and
  // --reuseport (several processes on one port: docs/DEPLOYMENT.md).
  bool debug_endpoint = false;
  // Takes --redis (chat rooms shared across nodes: docs/DEPLOYMENT.md).
  bool redis_bus = false;
};

// --max-connections' default: the descriptor limit (RLIMIT_NOFILE) less
// kReservedDescriptors, so that the server always has a descriptor to accept
// a client with and tell it kServerBusy instead of leaving it in the backlog.
inline constexpr int kReservedDescriptors = 64;
int default_max_connections();

// A joinable thread with a stack of kServerStackBytes (std::thread cannot
// choose its stack size).
class BigStackThread {
 public:
  explicit BigStackThread(std::function<void()> body);
  BigStackThread(BigStackThread&& other) noexcept : thread_(other.thread_), joinable_(other.joinable_) {
    other.joinable_ = false;
  }
  BigStackThread(const BigStackThread&) = delete;
  BigStackThread& operator=(const BigStackThread&) = delete;
  ~BigStackThread();  // joins if still joinable
  void join();
  void detach();

 private:
  pthread_t thread_{};
  bool joinable_ = false;
};

// Shared by the server's threads and the signal thread.
class ServerContext {
 public:
  ServerContext(const ServerConfig& config, int listener);
  ~ServerContext();
  ServerContext(const ServerContext&) = delete;
  ServerContext& operator=(const ServerContext&) = delete;

  const ServerConfig& config() const noexcept { return config_; }
  int listener() const noexcept { return listener_; }  // nonblocking
  // eventfd, readable (level-triggered, never drained) once stop is requested.
  int stop_fd() const noexcept { return stop_fd_; }
  bool stopping() const noexcept;

  // accept4() with SOCK_CLOEXEC, and TCP_NODELAY on the connection.  The
  // listener is nonblocking: accept4 never waits, so no thread ever sleeps
  // inside accept (holding whatever it holds).  `nonblocking` (event
  // loops): the new connection is nonblocking, and -1/EAGAIN is returned
  // when nothing is pending; otherwise the call waits in poll() for a
  // connection or a stop.  Returns -1 with errno set when stopping (EINVAL)
  // or when out of descriptors (EMFILE: the pending connection, if any, is
  // then refused -- accepted through a spare descriptor, told kServerBusy
  // and closed -- so a level-triggered loop does not spin on it and a client
  // is not left in the backlog with no reply).  Retries EINTR/ECONNABORTED.
  int accept_connection(bool nonblocking);

  // Connection registry for the stop protocol.  track() a connection before
  // blocking on it; untrack_and_close() it instead of close().  A connection
  // tracked after stop is shut down at once.
  void track(int fd);
  void untrack_and_close(int fd);

  // Step 1 of the stop protocol; idempotent.  Called by the signal thread.
  void request_stop();

 private:
  enum class Refusal { kRefused, kNothingPending, kNoSpare };
  // Out of descriptors: accepts one pending connection with the spare
  // descriptor's slot, tells it kServerBusy and closes it.  Never blocks.
  Refusal refuse_pending();
  // poll() for `fd` readable (fd -1: none) or the stop eventfd, at most
  // timeout_ms (-1: no bound); true if `fd` is readable.
  bool wait_readable(int fd, int timeout_ms) const;
  // With no spare descriptor to refuse with, a blocking accept pauses this
  // long before it tries again, so it does not spin while out of descriptors.
  static constexpr int kNoSparePauseMs = 50;

  ServerConfig config_;
  int listener_;                     // listening socket, shut down by request_stop
  int stop_fd_;                      // eventfd, written once by request_stop
  std::mutex spare_mutex_;           // guards spare_fd_; held only around nonblocking calls
  int spare_fd_;                     // /dev/null, given up to refuse a connection on EMFILE
  std::mutex mutex_;                 // guards tracked_ and the shutdowns
  std::unordered_set<int> tracked_;  // open connection fds (guarded by mutex_)
  bool stopping_ = false;            // guarded by mutex_; mirrored in stop_flag_
  // Written with release by request_stop, read with acquire by stopping():
  // a server that sees it also sees the listener already shut down.
  std::atomic<bool> stop_flag_{false};
};

using ServeFn = std::function<void(ServerContext&)>;

// The whole program for most servers: parse_flags, open_listener, run_server.
int server_main(int argc, char** argv, std::string_view name, ServeFn serve, ServerTraits traits = {});

// The pieces, for a server that must fork between them (dumb_prefork).
// parse_flags exits 0 after --help and 2 on a bad flag; open_listener exits 1
// if it cannot listen.
const ServerRow& server_row(std::string_view name);  // aborts if not in servers.def
ServerConfig parse_flags(int argc, char** argv, const ServerRow& row, const ServerTraits& traits);
int open_listener(const ServerConfig& config, const ServerRow& row);
// The signals that start the stop protocol: SIGINT and SIGTERM.
sigset_t stop_signals();
// Blocks them in the calling thread (so in every thread it
// creates) and ignores SIGPIPE.  Call before creating any thread.
void block_stop_signals();
// Runs serve on a BigStackThread under the stop protocol; returns the exit
// status (0 after a stop).
int run_server(const ServerConfig& config, int listener, const ServeFn& serve);

}  // namespace common
