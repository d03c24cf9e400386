// tests/apps/server_harness.h -- run a server binary from the table
// (apps/*/servers.def) as a subprocess and talk to it over 127.0.0.1.
//
// ServerProcess starts `<build>/apps/<name> --port 0 ...`, reads the port it
// announces ("<name> listening on 127.0.0.1:<port>") -- so parallel tests
// never race for a port -- and kills it (SIGKILL, reaped) when destroyed if
// it still runs; the child also dies with the test process
// (PR_SET_PDEATHSIG).  Client is a plain blocking socket with a receive
// timeout, so no test can hang on a silent server.

#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <ostream>
#include <string>
#include <string_view>
#include <vector>

#include <sys/types.h>

#include "common/servers.h"

namespace harness {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

// Timeouts and sizes scale with this in sanitizer builds (5-20x slower).
#ifdef GORT_SANITIZER_BUILD
inline constexpr int kSlowdown = 4;
#else
inline constexpr int kSlowdown = 1;
#endif

// The rows of the table for one protocol, for INSTANTIATE_TEST_SUITE_P.
std::vector<common::ServerRow> rows(common::Protocol protocol);
// Test name suffix: the server's name.
std::string row_name(const common::ServerRow& row);

// Runs `binary` with `args`; returns its exit status (or -1), discarding
// its output.  For --help and bad-flag checks.
int run_to_exit(std::string_view server, const std::vector<std::string>& args);

// Resource limits set in the child before it runs the server.
struct Limits {
  long open_files = 0;  // RLIMIT_NOFILE (soft and hard); 0: inherited
};

class ServerProcess {
 public:
  // Starts the server and waits (up to 10 s) until it listens; on failure
  // the test fails (port() is then 0).
  explicit ServerProcess(std::string_view server, std::vector<std::string> args = {}, Limits limits = {});
  ~ServerProcess();
  ServerProcess(const ServerProcess&) = delete;
  ServerProcess& operator=(const ServerProcess&) = delete;

  std::uint16_t port() const noexcept { return port_; }
  pid_t pid() const noexcept { return pid_; }
  // Sends SIGTERM and waits up to `bound` for the exit.  Returns the exit
  // status, or nullopt if it did not exit in time or died of a signal.
  // Once it has exited, returns the same status again.
  std::optional<int> stop(milliseconds bound);
  // Resident memory of the server and all its descendants, in KiB.
  long tree_rss_kib() const;
  // Open descriptors of the server and all its descendants.
  int tree_open_fds() const;
  // True while the server process has not exited (it is not reaped here).
  bool alive() const;
  // Prints the server's threads and fibers to stderr (gdb, best effort):
  // for a test that sees the server stall, before it fails.
  void print_threads_and_fibers() const;

 private:
  pid_t pid_ = -1;
  std::uint16_t port_ = 0;
  std::optional<int> exit_status_;  // once reaped by stop()
};

class Client {
 public:
  // Connects (blocking) to 127.0.0.1:port.  rcvbuf > 0 sets SO_RCVBUF before
  // connecting.  `timeout` bounds every receive.
  explicit Client(std::uint16_t port, milliseconds timeout = 5000ms * kSlowdown, int rcvbuf = 0);
  ~Client();
  Client(const Client&) = delete;
  Client& operator=(const Client&) = delete;

  bool connected() const noexcept { return fd_ >= 0; }
  int fd() const noexcept { return fd_; }  // for clients that drive the socket themselves
  void set_timeout(milliseconds timeout);
  void set_nodelay();
  // Sends everything; false on error.
  bool send(std::string_view bytes);
  void shutdown_write();
  // The next line with its "\n"; nullopt on timeout, EOF or error.
  std::optional<std::string> read_line();
  // Exactly n bytes (fewer on timeout, EOF or error).
  std::string read_exact(std::size_t n);
  // Reads and discards up to n bytes; returns how many arrived.
  std::size_t drain(std::size_t n);
  // True if the peer has closed (EOF or reset) within the timeout, after any
  // bytes still buffered.
  bool closed_by_peer();
  // Nothing arrives within `wait`.
  bool silent_for(milliseconds wait);

 private:
  bool fill();  // one recv into buffered_; false on timeout/EOF/error
  int fd_ = -1;
  std::string buffered_;  // received, not yet returned
  bool eof_ = false;
};

}  // namespace harness

namespace common {
// gtest prints the parameter with this instead of its bytes.
inline void PrintTo(const ServerRow& row, std::ostream* os) { *os << row.name; }
}  // namespace common
