// tests/apps/server_harness.cpp -- see server_harness.h.

#include "server_harness.h"

#include <gtest/gtest.h>

#include <cerrno>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <thread>

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

namespace harness {

namespace {

std::string binary_path(std::string_view server) { return std::string(GORT_APPS_BINARY_DIR "/") + std::string(server); }

// fork + exec with stdout on `out_fd` (or /dev/null if -1); stderr inherited.
pid_t spawn(std::string_view server, const std::vector<std::string>& args, int out_fd, Limits limits = {}) {
  std::string path = binary_path(server);
  std::vector<char*> argv;
  argv.push_back(path.data());
  for (const auto& arg : args) argv.push_back(const_cast<char*>(arg.c_str()));
  argv.push_back(nullptr);
  pid_t parent = getpid();
  pid_t pid = fork();
  if (pid == 0) {
    prctl(PR_SET_PDEATHSIG, SIGKILL);  // never outlive the test
    if (getppid() != parent) _exit(127);
    int out = out_fd >= 0 ? out_fd : open("/dev/null", O_WRONLY);
    dup2(out, STDOUT_FILENO);
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, nullptr);
    if (limits.open_files > 0) {
      rlimit limit{static_cast<rlim_t>(limits.open_files), static_cast<rlim_t>(limits.open_files)};
      if (setrlimit(RLIMIT_NOFILE, &limit) != 0) _exit(126);
    }
    execv(path.c_str(), argv.data());
    _exit(127);
  }
  return pid;
}

std::optional<int> wait_exit(pid_t pid, milliseconds bound) {
  auto deadline = Clock::now() + bound;
  for (;;) {
    int status = 0;
    pid_t r = waitpid(pid, &status, WNOHANG);
    if (r == pid) {
      if (WIFEXITED(status)) return WEXITSTATUS(status);
      ADD_FAILURE() << "server died of signal " << (WIFSIGNALED(status) ? WTERMSIG(status) : 0);
      return std::nullopt;
    }
    if (r < 0 || Clock::now() > deadline) return std::nullopt;
    std::this_thread::sleep_for(2ms);
  }
}

// A server that does not stop is a bug to find later from the test's log:
// its threads' stacks and, where the build allows (gort.py), its fibers go
// to stderr before the destructor kills it. Best effort: without gdb the
// test just fails as it would have.
void print_threads_and_fibers(pid_t pid) {
  std::string command = "timeout 120 gdb -p " + std::to_string(pid) +
                        " -batch -nx -ex 'set pagination off' -ex 'thread apply all bt 30'"
                        " -ex 'source " GORT_GDB_SCRIPT "' -ex 'gort fibers' -ex 'gort bt all 10' 1>&2 2>/dev/null";
  std::fprintf(stderr, "--- server %d did not stop: its threads and fibers ---\n", static_cast<int>(pid));
  // Where a stop signal waits, if it does: pending (thread / process),
  // blocked and caught signals of every thread.
  std::error_code error;
  for (auto it = std::filesystem::directory_iterator("/proc/" + std::to_string(pid) + "/task", error);
       !error && it != std::filesystem::directory_iterator(); it.increment(error)) {
    std::ifstream status(it->path() / "status");
    std::string summary = it->path().filename().string() + ":";
    for (std::string line; std::getline(status, line);)
      for (const char* key : {"Name:", "State:", "SigPnd:", "ShdPnd:", "SigBlk:", "SigCgt:"})
        if (line.rfind(key, 0) == 0) summary += " " + line;
    std::fprintf(stderr, "%s\n", summary.c_str());
  }
  std::fflush(stderr);
  if (std::system(command.c_str()) != 0) std::fprintf(stderr, "(gdb could not read the server)\n");
}

long rss_kib(pid_t pid) {
  std::ifstream status("/proc/" + std::to_string(pid) + "/status");
  for (std::string line; std::getline(status, line);)
    if (line.rfind("VmRSS:", 0) == 0) return std::stol(line.substr(6));
  return 0;
}

int open_fds(pid_t pid) {
  std::error_code error;
  int n = 0;
  for (auto it = std::filesystem::directory_iterator("/proc/" + std::to_string(pid) + "/fd", error);
       !error && it != std::filesystem::directory_iterator(); it.increment(error))
    ++n;
  return n;
}

std::vector<pid_t> children(pid_t pid) {
  std::vector<pid_t> out;
  std::ifstream list("/proc/" + std::to_string(pid) + "/task/" + std::to_string(pid) + "/children");
  for (pid_t child; list >> child;) out.push_back(child);
  return out;
}

}  // namespace

std::vector<common::ServerRow> rows(common::Protocol protocol) {
  std::vector<common::ServerRow> out;
  for (const auto& row : common::kServers)
    if (row.protocol == protocol) out.push_back(row);
  return out;
}

std::string row_name(const common::ServerRow& row) { return std::string(row.name); }

int run_to_exit(std::string_view server, const std::vector<std::string>& args) {
  pid_t pid = spawn(server, args, -1);
  int status = 0;
  if (waitpid(pid, &status, 0) != pid || !WIFEXITED(status)) return -1;
  return WEXITSTATUS(status);
}

// ------------------------------------------------------------- process ---

ServerProcess::ServerProcess(std::string_view server, std::vector<std::string> args, Limits limits) {
  int pipe_fds[2];
  if (pipe2(pipe_fds, O_CLOEXEC) != 0) {
    ADD_FAILURE() << "pipe: " << std::strerror(errno);
    return;
  }
  args.insert(args.begin(), {"--port", "0"});
  pid_ = spawn(server, args, pipe_fds[1], limits);
  close(pipe_fds[1]);
  std::string out;
  auto deadline = Clock::now() + 10s * kSlowdown;
  while (out.find('\n') == std::string::npos && Clock::now() < deadline) {
    pollfd p{pipe_fds[0], POLLIN, 0};
    if (poll(&p, 1, 100) <= 0) continue;
    char buf[256];
    ssize_t n = read(pipe_fds[0], buf, sizeof buf);
    if (n <= 0) break;
    out.append(buf, static_cast<std::size_t>(n));
  }
  close(pipe_fds[0]);  // the servers print nothing else on stdout
  auto colon = out.rfind(':');
  if (out.find(" listening on ") == std::string::npos || colon == std::string::npos) {
    ADD_FAILURE() << server << " did not start; its stdout: '" << out << "'";
    return;
  }
  port_ = static_cast<std::uint16_t>(std::stoi(out.substr(colon + 1)));
}

ServerProcess::~ServerProcess() {
  if (pid_ <= 0) return;
  for (pid_t child : children(pid_)) kill(child, SIGKILL);  // prefork workers
  kill(pid_, SIGKILL);
  waitpid(pid_, nullptr, 0);
}

std::optional<int> ServerProcess::stop(milliseconds bound) {
  if (pid_ <= 0) return exit_status_;
  kill(pid_, SIGTERM);
  exit_status_ = wait_exit(pid_, bound);
  if (exit_status_) {
    pid_ = -1;  // reaped
  } else if (alive()) {
    harness::print_threads_and_fibers(pid_);
  }
  return exit_status_;
}


long ServerProcess::tree_rss_kib() const {
  long total = rss_kib(pid_);
  for (pid_t child : children(pid_)) total += rss_kib(child);
  return total;
}

int ServerProcess::tree_open_fds() const {
  int total = open_fds(pid_);
  for (pid_t child : children(pid_)) total += open_fds(child);
  return total;
}

void ServerProcess::print_threads_and_fibers() const {
  if (alive()) harness::print_threads_and_fibers(pid_);
}

bool ServerProcess::alive() const {
  if (pid_ <= 0) return false;
  // /proc/<pid>/stat: "pid (comm) S ..."; a zombie (Z) has exited.
  std::ifstream stat("/proc/" + std::to_string(pid_) + "/stat");
  std::string text((std::istreambuf_iterator<char>(stat)), std::istreambuf_iterator<char>());
  auto paren = text.rfind(')');
  return paren != std::string::npos && paren + 2 < text.size() && text[paren + 2] != 'Z' && text[paren + 2] != 'X';
}

// -------------------------------------------------------------- client ---

Client::Client(std::uint16_t port, milliseconds timeout, int rcvbuf) {
  fd_ = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (rcvbuf > 0) setsockopt(fd_, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof rcvbuf);
  set_timeout(timeout);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(port);
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (connect(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
    ADD_FAILURE() << "connect to port " << port << ": " << std::strerror(errno);
    close(fd_);
    fd_ = -1;
  }
}

Client::~Client() {
  if (fd_ >= 0) close(fd_);
}

void Client::set_timeout(milliseconds timeout) {
  timeval tv{static_cast<time_t>(timeout.count() / 1000), static_cast<suseconds_t>(timeout.count() % 1000 * 1000)};
  setsockopt(fd_, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  setsockopt(fd_, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
}

void Client::set_nodelay() {
  int one = 1;
  setsockopt(fd_, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
}

bool Client::send(std::string_view bytes) {
  while (!bytes.empty()) {
    ssize_t n = ::send(fd_, bytes.data(), bytes.size(), MSG_NOSIGNAL);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    bytes.remove_prefix(static_cast<std::size_t>(n));
  }
  return true;
}

void Client::shutdown_write() { ::shutdown(fd_, SHUT_WR); }

bool Client::fill() {
  if (eof_ || fd_ < 0) return false;
  char buf[65536];
  for (;;) {
    ssize_t n = recv(fd_, buf, sizeof buf, 0);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      eof_ = n == 0 || errno == ECONNRESET;
      return false;
    }
    buffered_.append(buf, static_cast<std::size_t>(n));
    return true;
  }
}

std::optional<std::string> Client::read_line() {
  for (;;) {
    auto nl = buffered_.find('\n');
    if (nl != std::string::npos) {
      std::string line = buffered_.substr(0, nl + 1);
      buffered_.erase(0, nl + 1);
      return line;
    }
    if (!fill()) return std::nullopt;
  }
}

std::string Client::read_exact(std::size_t n) {
  while (buffered_.size() < n && fill()) {
  }
  std::string out = buffered_.substr(0, n);
  buffered_.erase(0, out.size());
  return out;
}

std::size_t Client::drain(std::size_t n) {
  std::size_t got = 0;
  while (got < n) {
    if (buffered_.empty() && !fill()) break;
    std::size_t take = std::min(n - got, buffered_.size());
    buffered_.erase(0, take);
    got += take;
  }
  return got;
}

bool Client::closed_by_peer() {
  while (fill()) buffered_.clear();
  return eof_;
}

bool Client::silent_for(milliseconds wait) {
  if (!buffered_.empty()) return false;
  pollfd p{fd_, POLLIN, 0};
  return poll(&p, 1, static_cast<int>(wait.count())) == 0;
}

}  // namespace harness
