// common/server_main.cpp -- see server_main.h.

#include "common/server_main.h"

#include "common/line_framer.h"

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <condition_variable>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string_view>
#include <thread>

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

namespace common {

// ------------------------------------------------------------- threads ---

namespace {
void* run_function(void* arg) {
  std::unique_ptr<std::function<void()>> body(static_cast<std::function<void()>*>(arg));
  (*body)();
  return nullptr;
}
}  // namespace

BigStackThread::BigStackThread(std::function<void()> body) {
  auto* heap_body = new std::function<void()>(std::move(body));
  pthread_attr_t attr;
  pthread_attr_init(&attr);
  pthread_attr_setstacksize(&attr, kServerStackBytes);
  int rc = pthread_create(&thread_, &attr, run_function, heap_body);
  pthread_attr_destroy(&attr);
  if (rc != 0) {
    delete heap_body;
    std::fprintf(stderr, "pthread_create: %s\n", std::strerror(rc));
    std::abort();
  }
  joinable_ = true;
}

BigStackThread::~BigStackThread() {
  if (joinable_) join();
}

void BigStackThread::join() {
  pthread_join(thread_, nullptr);
  joinable_ = false;
}

void BigStackThread::detach() {
  pthread_detach(thread_);
  joinable_ = false;
}

// ------------------------------------------------------------- context ---

ServerContext::ServerContext(const ServerConfig& config, int listener)
    : config_(config),
      listener_(listener),
      stop_fd_(eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK)),
      spare_fd_(open("/dev/null", O_RDONLY | O_CLOEXEC)) {
  // accept4 itself never waits (see accept_connection): waiting happens in
  // poll(), where the stop eventfd can end it too.
  fcntl(listener_, F_SETFL, fcntl(listener_, F_GETFL) | O_NONBLOCK);
}

ServerContext::~ServerContext() {
  close(stop_fd_);
  if (spare_fd_ >= 0) close(spare_fd_);
}

bool ServerContext::stopping() const noexcept {
  return stop_flag_.load(std::memory_order_acquire);  // pairs with request_stop's store
}

bool ServerContext::wait_readable(int fd, int timeout_ms) const {
  pollfd fds[2] = {{fd, POLLIN, 0}, {stop_fd_, POLLIN, 0}};
  int n = poll(fds, fd < 0 ? 1 : 2, timeout_ms);
  if (fd < 0) return false;
  return n > 0 && fds[0].revents != 0;
}

int ServerContext::accept_connection(bool nonblocking) {
  int flags = SOCK_CLOEXEC | (nonblocking ? SOCK_NONBLOCK : 0);
  for (;;) {
    int fd = accept4(listener_, nullptr, nullptr, flags);
    if (fd >= 0) {
      // Replies are small separate writes; Nagle would hold each one back
      // until the previous one is acknowledged.
      int one = 1;
      setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
      return fd;
    }
    int error = errno;
    if (error == EINTR || error == ECONNABORTED) continue;
    if (stopping()) {
      errno = EINVAL;
      return -1;
    }
    if (error == EMFILE || error == ENFILE) {
      // Linux fails with EMFILE before it looks for a pending connection, so
      // this may mean nothing at all is waiting.  refuse_pending() answers
      // one that is; a blocking caller then waits for the next one to refuse
      // (or, with no spare descriptor to refuse it with, pauses) instead of
      // spinning on the same EMFILE.
      Refusal refusal = refuse_pending();
      if (!nonblocking && refusal == Refusal::kNothingPending) wait_readable(listener_, -1);
      if (!nonblocking && refusal == Refusal::kNoSpare) wait_readable(-1, kNoSparePauseMs);
      errno = EMFILE;
      return -1;
    }
    if (error == EAGAIN || error == EWOULDBLOCK) {
      if (nonblocking) {
        errno = error;
        return -1;
      }
      wait_readable(listener_, -1);  // a connection, the listener's shutdown, or a stop
      continue;
    }
    errno = error;
    return -1;
  }
}

ServerContext::Refusal ServerContext::refuse_pending() {
  // Only nonblocking calls under this lock (the listener is nonblocking):
  // holding it never waits for a client.  It keeps two threads from giving
  // up the one spare descriptor at once.
  std::lock_guard lock(spare_mutex_);
  if (spare_fd_ < 0) spare_fd_ = open("/dev/null", O_RDONLY | O_CLOEXEC);  // a descriptor freed since
  if (spare_fd_ < 0) return Refusal::kNoSpare;
  close(spare_fd_);
  int refused = accept4(listener_, nullptr, nullptr, SOCK_CLOEXEC | SOCK_NONBLOCK);
  if (refused >= 0) {
    // Best effort: the client learns why instead of seeing a bare close.
    (void)send(refused, kServerBusy.data(), kServerBusy.size(), MSG_DONTWAIT | MSG_NOSIGNAL);
    close(refused);
  }
  int error = errno;
  spare_fd_ = open("/dev/null", O_RDONLY | O_CLOEXEC);
  if (refused >= 0) return Refusal::kRefused;
  // EMFILE again: another thread took the slot the spare left.
  return error == EAGAIN || error == EWOULDBLOCK ? Refusal::kNothingPending : Refusal::kNoSpare;
}

void ServerContext::track(int fd) {
  std::lock_guard lock(mutex_);
  tracked_.insert(fd);
  if (stopping_) shutdown(fd, SHUT_RD);
}

void ServerContext::untrack_and_close(int fd) {
  {
    // Erase under the lock, so request_stop never shuts down a number that
    // close() has released and a new connection reused.
    std::lock_guard lock(mutex_);
    tracked_.erase(fd);
  }
  close(fd);
}

void ServerContext::request_stop() {
  std::lock_guard lock(mutex_);
  if (stopping_) return;
  stopping_ = true;
  stop_flag_.store(true, std::memory_order_release);  // pairs with stopping()
  std::uint64_t one = 1;
  [[maybe_unused]] ssize_t n = write(stop_fd_, &one, sizeof one);
  shutdown(listener_, SHUT_RDWR);                 // a poll() on it returns; accept4 fails with EINVAL
  for (int fd : tracked_) shutdown(fd, SHUT_RD);  // blocked read() returns 0
}

// --------------------------------------------------------------- flags ---

int default_max_connections() {
  rlimit limit{};
  if (getrlimit(RLIMIT_NOFILE, &limit) != 0 || limit.rlim_cur == RLIM_INFINITY) return 1'000'000;
  long room = static_cast<long>(limit.rlim_cur) - kReservedDescriptors;
  return static_cast<int>(std::clamp<long>(room, 1, 1'000'000));
}

const ServerRow& server_row(std::string_view name) {
  const ServerRow* row = find_server(name);
  if (row == nullptr) {
    std::fprintf(stderr, "%.*s: not in apps/dumb/servers.def or apps/chat/servers.def\n", static_cast<int>(name.size()),
                 name.data());
    std::abort();
  }
  return *row;
}

namespace {

void print_usage(std::FILE* out, const ServerRow& row, const ServerTraits& traits) {
  const char* what = row.protocol == Protocol::kDumb ? "DUMB server (docs/PROTOCOL.md)" : "chat server";
  std::fprintf(out,
               "usage: %.*s [--host HOST] [--port PORT] [--drain-ms MS]%s [--help]\n"
               "%s: %.*s.\n\n"
               "  --host HOST    address to listen on (default 127.0.0.1)\n"
               "  --port PORT    TCP port (default %u; 0 picks a free port)\n"
               "  --drain-ms MS  on SIGINT/SIGTERM, time in-flight requests get to finish (default 2000)\n",
               static_cast<int>(row.name.size()), row.name.data(), traits.default_workers ? " [--workers N]" : "", what,
               static_cast<int>(row.summary.size()), row.summary.data(), row.default_port());
  if (traits.default_workers)
    std::fprintf(out, "  --workers N    %s (default %d)\n", traits.workers_help, traits.default_workers);
  if (traits.connection_limits)
    std::fprintf(out,
                 "  --max-connections N  connections served at once; past it a new client gets\n"
                 "                 'ERROR server busy' and is closed (default %d: the descriptor limit less %d)\n"
                 "  --idle-timeout MS    close a connection that sends nothing for MS ms (default %lld; 0: never)\n",
                 default_max_connections(), kReservedDescriptors,
                 static_cast<long long>(traits.default_idle_timeout.count()));
  if (traits.debug_endpoint)
    std::fprintf(out,
                 "  --debug-addr HOST:PORT  serve /metrics (Prometheus) and a live page of the runtime\n"
                 "                 there (default: none; keep it on loopback or a trusted network)\n"
                 "  --reuseport    share the port with other processes started with it (the kernel\n"
                 "                 spreads connections over them); without it, a port in use is an error\n");
  if (traits.redis_bus)
    std::fprintf(out,
                 "  --redis HOST:PORT  share the room with other nodes through this Redis\n"
                 "                 (pub/sub; default: none, a room of this process only)\n");
  std::fprintf(out, "  --help         print this and exit\n");
}

[[noreturn]] void bad_flag(const ServerRow& row, const char* fmt, const char* arg) {
  std::fprintf(stderr, "%.*s: ", static_cast<int>(row.name.size()), row.name.data());
  std::fprintf(stderr, fmt, arg);
  std::fprintf(stderr, "\ntry '%.*s --help'\n", static_cast<int>(row.name.size()), row.name.data());
  std::exit(2);
}

long parse_number(const ServerRow& row, const char* flag, const char* text, long lo, long hi) {
  std::string_view s(text);
  long value = 0;
  auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), value);
  if (s.empty() || ec != std::errc() || end != s.data() + s.size() || value < lo || value > hi)
    bad_flag(row, (std::string("bad value for ") + flag + ": '%s'").c_str(), text);
  return value;
}

// "HOST:PORT" with an IPv4 host and a port > 0.
bool valid_host_port(std::string_view text) {
  std::size_t colon = text.rfind(':');
  if (colon == std::string_view::npos) return false;
  std::string host(text.substr(0, colon));
  std::string_view port = text.substr(colon + 1);
  in_addr probe{};
  long value = 0;
  auto [end, ec] = std::from_chars(port.data(), port.data() + port.size(), value);
  return inet_pton(AF_INET, host.c_str(), &probe) == 1 && !port.empty() && ec == std::errc() &&
         end == port.data() + port.size() && value > 0 && value <= 65535;
}

}  // namespace

ServerConfig parse_flags(int argc, char** argv, const ServerRow& row, const ServerTraits& traits) {
  ServerConfig config;
  config.port = row.default_port();
  config.workers = traits.default_workers;
  if (traits.connection_limits) {
    config.max_connections = default_max_connections();
    config.idle_timeout = traits.default_idle_timeout;
  }
  for (int i = 1; i < argc; ++i) {
    std::string_view flag(argv[i]);
    if (flag == "--help" || flag == "-h") {
      print_usage(stdout, row, traits);
      std::exit(0);
    }
    if (flag == "--reuseport" && traits.debug_endpoint) {  // the one flag without a value
      config.reuseport = true;
      continue;
    }
    bool known = flag == "--host" || flag == "--port" || flag == "--drain-ms" ||
                 (flag == "--workers" && traits.default_workers) ||
                 ((flag == "--max-connections" || flag == "--idle-timeout") && traits.connection_limits) ||
                 (flag == "--debug-addr" && traits.debug_endpoint) || (flag == "--redis" && traits.redis_bus);
    if (!known) bad_flag(row, "unknown flag '%s'", argv[i]);
    if (i + 1 == argc) bad_flag(row, "%s needs a value", argv[i]);
    const char* value = argv[++i];
    if (flag == "--host") {
      in_addr probe{};
      if (inet_pton(AF_INET, value, &probe) != 1) bad_flag(row, "--host needs an IPv4 address, not '%s'", value);
      config.host = value;
    } else if (flag == "--port") {
      config.port = static_cast<std::uint16_t>(parse_number(row, "--port", value, 0, 65535));
    } else if (flag == "--drain-ms") {
      config.drain = std::chrono::milliseconds(parse_number(row, "--drain-ms", value, 0, 600000));
    } else if (flag == "--max-connections") {
      config.max_connections = static_cast<int>(parse_number(row, "--max-connections", value, 1, 10'000'000));
    } else if (flag == "--idle-timeout") {
      config.idle_timeout = std::chrono::milliseconds(parse_number(row, "--idle-timeout", value, 0, 86'400'000));
    } else if (flag == "--debug-addr" || flag == "--redis") {
      if (!valid_host_port(value))
        bad_flag(row, (std::string(flag) + " needs IPV4-ADDRESS:PORT, not '%s'").c_str(), value);
      (flag == "--redis" ? config.redis : config.debug_addr) = value;
    } else {
      config.workers = static_cast<int>(parse_number(row, "--workers", value, 1, 1024));
    }
  }
  return config;
}

// ------------------------------------------------------------ listener ---

int open_listener(const ServerConfig& config, const ServerRow& row) {
  auto fail = [&](const char* what) {
    std::fprintf(stderr, "%.*s: %s %s:%u: %s\n", static_cast<int>(row.name.size()), row.name.data(), what,
                 config.host.c_str(), config.port, std::strerror(errno));
    std::exit(1);
  };
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) fail("socket");
  int one = 1;
  setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);  // restart despite TIME_WAIT
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(config.port);
  inet_pton(AF_INET, config.host.c_str(), &addr.sin_addr);
  if (bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) fail("cannot bind");
  if (listen(fd, SOMAXCONN) != 0) fail("cannot listen on");
  socklen_t len = sizeof addr;
  getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
  std::printf("%.*s listening on %s:%u\n", static_cast<int>(row.name.size()), row.name.data(), config.host.c_str(),
              ntohs(addr.sin_port));
  std::fflush(stdout);
  return fd;
}

// ----------------------------------------------------------------- run ---

sigset_t stop_signals() {
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGTERM);
  return set;
}

void block_stop_signals() {
  sigset_t set = stop_signals();
  pthread_sigmask(SIG_BLOCK, &set, nullptr);
  std::signal(SIGPIPE, SIG_IGN);  // a write to a closed peer fails with EPIPE instead
}

int run_server(const ServerConfig& config, int listener, const ServeFn& serve) {
  block_stop_signals();
  ServerContext ctx(config, listener);
  std::mutex mutex;
  std::condition_variable served_cv;
  bool served = false;  // guarded by mutex

  // The signal thread: step 1 and the drain bound of the stop protocol.
  std::thread signals([&] {
    sigset_t set = stop_signals();
    int sig = 0;
    sigwait(&set, &sig);
    ctx.request_stop();
    std::unique_lock lock(mutex);
    if (!served_cv.wait_for(lock, config.drain, [&] { return served; })) {
      std::fprintf(stderr, "drain took over %lld ms; exiting anyway\n", static_cast<long long>(config.drain.count()));
      std::_Exit(0);
    }
  });

  BigStackThread([&] { serve(ctx); }).join();
  bool stopped = ctx.stopping();
  {
    std::lock_guard lock(mutex);
    served = true;
  }
  served_cv.notify_one();
  if (!stopped) pthread_kill(signals.native_handle(), SIGTERM);  // serve() gave up: release the signal thread
  signals.join();
  close(listener);
  return stopped ? 0 : 1;
}

int server_main(int argc, char** argv, std::string_view name, ServeFn serve, ServerTraits traits) {
  const ServerRow& row = server_row(name);
  ServerConfig config = parse_flags(argc, argv, row, traits);
  block_stop_signals();
  int listener = open_listener(config, row);
  return run_server(config, listener, serve);
}

}  // namespace common
