// ping_floor -- the floor under the PING benchmark: the least a server on
// this kernel can do per closed-loop PING request.  Not a DUMB server (it
// answers PING and nothing else, and is not in apps/dumb/servers.def): an
// instrument for bench/servers/ab.py, to tell the kernel's share of a
// server's CPU per request from the server's own.
//
//   ping_floor [--host HOST] [--port PORT]      (default 127.0.0.1:8090; 0 picks a free port)
//
// Design: one thread, one epoll set, every connection edge-triggered for
// input only.  A readable connection gets one recv into a buffer shared by
// all connections (hot in cache: no per-connection buffer to miss on),
// then one send of a "PONG\n" per complete "PING\n" line in it; a short
// recv means the socket was drained, so the next recv waits for the next
// edge (dumb_fiber's read does the same).  Per request that is one recv
// and one send, and one epoll_wait per batch of up to 128 ready
// connections: the syscalls dumb_fiber makes, and nothing else.
//
// Lines are framed as docs/PROTOCOL.md says (LF, one CR before it
// dropped).  Limits, each a closed connection rather than a silent fix-up,
// and each kind said once on stderr: a line other than "PING" (after the
// PONGs owed before it), a connection epoll will not watch, and a reply the
// socket's send buffer cannot take at once (a closed-loop client has one
// request in flight, so it never gets there).  When accept runs out of
// descriptors or memory, the listener rests until a connection closes; with
// none open, ping_floor exits 1.  SIGINT/SIGTERM (through a signalfd in the
// same epoll set) end it with status 0.
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <sys/epoll.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

namespace {

constexpr int kBatch = 128;            // epoll events per epoll_wait
constexpr std::size_t kBuffer = 2048;  // the shared receive buffer (dumb_fiber's kReadBuffer)
constexpr char kPing[] = "PING";
constexpr std::size_t kPingLen = 4;

void usage(FILE* out) {
  std::fprintf(out,
               "usage: ping_floor [--host HOST] [--port PORT] [--help]\n"
               "The floor under the closed-loop PING benchmark: one thread, one epoll set, one recv and one\n"
               "send per request, nothing else.  Answers \"PING\" lines (LF or CRLF) with \"PONG\"; any other\n"
               "line closes the connection.  Not a DUMB server: an instrument for bench/servers/ab.py.\n\n"
               "  --host HOST   IPv4 address to listen on (default 127.0.0.1)\n"
               "  --port PORT   TCP port (default 8090; 0 picks a free port)\n"
               "  --help        print this and exit\n");
}

// Per connection: the bytes of a line not yet complete -- at most "PING\r"
// (one CR before the LF is dropped, as docs/PROTOCOL.md frames lines).
struct Conn {
  char partial[kPingLen + 1] = {};
  std::size_t held = 0;
  bool open = false;
};

// Each way a connection can end early is said once on stderr (a run has
// thousands of connections; one line per kind is enough to notice).
enum class Closed { kOtherLine, kNotWatched, kSendFailed, kCount };
bool said[int(Closed::kCount)] = {};
void say_once(Closed why, const char* what) {
  if (said[int(why)]) return;
  said[int(why)] = true;
  std::fprintf(stderr, "ping_floor: %s; closing that connection (said once)\n", what);
}

// Frames `data` onto c's partial line: the PONGs owed for the PING lines
// in it, and whether a line other than PING came after them (the
// connection then closes once those replies are sent).
struct Framed {
  std::size_t pongs = 0;
  bool other_line = false;
};

Framed frame(Conn& c, const char* data, std::size_t n) {
  Framed f;
  for (std::size_t i = 0; i < n; ++i) {
    char ch = data[i];
    if (ch == '\n') {
      std::size_t len = c.held;
      if (len == kPingLen + 1 && c.partial[kPingLen] == '\r') --len;
      if (len != kPingLen || std::memcmp(c.partial, kPing, kPingLen) != 0) {
        f.other_line = true;
        break;
      }
      c.held = 0;
      ++f.pongs;
    } else if (c.held == kPingLen + 1) {  // longer than "PING\r": not a PING line
      f.other_line = true;
      break;
    } else {
      c.partial[c.held++] = ch;
    }
  }
  if (f.other_line) say_once(Closed::kOtherLine, "a line other than PING");
  return f;
}

// accept(2)'s "pending network errors": the new connection's own trouble,
// or an interruption; the listener goes on with the next one.
bool retry_accept(int err) {
  switch (err) {
    case EINTR:
    case ECONNABORTED:
    case EPROTO:
    case ENETDOWN:
    case ENOPROTOOPT:
    case EHOSTDOWN:
    case ENONET:
    case EHOSTUNREACH:
    case EOPNOTSUPP:
    case ENETUNREACH: return true;
    default: return false;
  }
}

}  // namespace

int main(int argc, char** argv) {
  std::string host = "127.0.0.1";
  long port = 8090;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if (a == "--help" || a == "-h") {
      usage(stdout);
      return 0;
    }
    if ((a == "--host" || a == "--port") && i + 1 < argc) {
      std::string v = argv[++i];
      if (a == "--host") {
        host = v;
      } else {
        char* end = nullptr;
        port = std::strtol(v.c_str(), &end, 10);
        if (v.empty() || *end != '\0' || port < 0 || port > 65535) {
          std::fprintf(stderr, "ping_floor: --port wants 0-65535, not '%s'\n", v.c_str());
          return 2;
        }
      }
      continue;
    }
    std::fprintf(stderr, "ping_floor: unknown or incomplete flag '%s'\n", a.c_str());
    usage(stderr);
    return 2;
  }

  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(uint16_t(port));
  if (inet_pton(AF_INET, host.c_str(), &addr.sin_addr) != 1) {
    std::fprintf(stderr, "ping_floor: --host wants an IPv4 address, not '%s'\n", host.c_str());
    return 2;
  }
  int ls = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  int one = 1;
  if (ls < 0 || setsockopt(ls, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) != 0 ||
      bind(ls, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 || listen(ls, SOMAXCONN) != 0) {
    std::fprintf(stderr, "ping_floor: cannot listen on %s:%ld: %s\n", host.c_str(), port, std::strerror(errno));
    return 1;
  }
  socklen_t len = sizeof addr;
  getsockname(ls, reinterpret_cast<sockaddr*>(&addr), &len);

  sigset_t stop;
  sigemptyset(&stop);
  sigaddset(&stop, SIGINT);
  sigaddset(&stop, SIGTERM);
  sigprocmask(SIG_BLOCK, &stop, nullptr);
  int sfd = signalfd(-1, &stop, SFD_NONBLOCK | SFD_CLOEXEC);
  int ep = epoll_create1(EPOLL_CLOEXEC);
  if (sfd < 0 || ep < 0) {
    std::fprintf(stderr, "ping_floor: %s\n", std::strerror(errno));
    return 1;
  }
  // The listener is level-triggered.  When accept fails for want of a
  // descriptor or memory it leaves the set until a connection closes (it
  // would otherwise stay readable and spin the loop).
  bool listener_paused = false;
  auto watch = [&](int fd) {
    epoll_event ev{};
    ev.events = EPOLLIN;
    ev.data.fd = fd;
    return epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev) == 0;
  };
  if (!watch(ls) || !watch(sfd)) {
    std::fprintf(stderr, "ping_floor: epoll_ctl: %s\n", std::strerror(errno));
    return 1;
  }
  std::printf("ping_floor listening on %s:%u\n", host.c_str(), unsigned(ntohs(addr.sin_port)));
  std::fflush(stdout);

  std::vector<Conn> conns;  // indexed by fd
  static char buf[kBuffer];
  static const std::string pongs = [] {
    std::string s;
    for (std::size_t i = 0; i < kBuffer / 5 + 1; ++i) s += "PONG\n";
    return s;
  }();
  std::size_t open_conns = 0;
  auto close_conn = [&](int fd) {
    conns[std::size_t(fd)].open = false;
    --open_conns;
    close(fd);  // also leaves the epoll set
    if (listener_paused && watch(ls)) listener_paused = false;
  };
  // Takes every queued connection; false when accept fails with nothing
  // open whose closing could free what it lacks.
  auto accept_ready = [&]() -> bool {
    for (;;) {
      int c = accept4(ls, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
      if (c < 0) {
        int err = errno;
        if (err == EAGAIN || err == EWOULDBLOCK) return true;
        if (retry_accept(err)) continue;
        if ((err == EMFILE || err == ENFILE || err == ENOBUFS || err == ENOMEM) && open_conns > 0) {
          std::fprintf(stderr, "ping_floor: accept: %s; accepting again once a connection closes\n",
                       std::strerror(err));
          epoll_ctl(ep, EPOLL_CTL_DEL, ls, nullptr);
          listener_paused = true;
          return true;
        }
        std::fprintf(stderr, "ping_floor: accept: %s\n", std::strerror(err));
        return false;
      }
      setsockopt(c, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
      if (std::size_t(c) >= conns.size()) conns.resize(std::size_t(c) + 1);
      conns[std::size_t(c)] = Conn{};
      conns[std::size_t(c)].open = true;
      ++open_conns;
      epoll_event cev{};
      cev.events = EPOLLIN | EPOLLRDHUP | EPOLLET;
      cev.data.fd = c;
      if (epoll_ctl(ep, EPOLL_CTL_ADD, c, &cev) != 0) {
        say_once(Closed::kNotWatched, (std::string("epoll_ctl: ") + std::strerror(errno)).c_str());
        close_conn(c);
      }
    }
  };
  // One edge of a connection: recv, answer, until drained (or closed).
  auto serve_ready = [&](int fd, uint32_t events) {
    Conn& c = conns[std::size_t(fd)];
    if (!c.open) return;  // closed earlier in this batch
    // With the peer's FIN in this edge, a short recv is no sign that no
    // further edge is needed: read on to EOF.
    bool closing = (events & (EPOLLRDHUP | EPOLLHUP | EPOLLERR)) != 0;
    for (;;) {
      ssize_t got = recv(fd, buf, sizeof buf, 0);
      if (got < 0 && errno == EINTR) continue;
      if (got < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return;
      if (got <= 0) {  // EOF or an error: the peer is gone
        close_conn(fd);
        return;
      }
      Framed f = frame(c, buf, std::size_t(got));
      std::size_t bytes = f.pongs * 5;
      if (bytes > 0) {
        ssize_t put = send(fd, pongs.data(), bytes, MSG_NOSIGNAL);
        if (put != ssize_t(bytes)) {
          say_once(Closed::kSendFailed, put < 0 ? (std::string("send: ") + std::strerror(errno)).c_str()
                                                : "a reply the send buffer could not take at once");
          close_conn(fd);
          return;
        }
      }
      if (f.other_line) {
        close_conn(fd);
        return;
      }
      if (std::size_t(got) < sizeof buf && !closing) return;  // drained: wait for the next edge
    }
  };

  epoll_event events[kBatch];
  for (;;) {
    int n = epoll_wait(ep, events, kBatch, -1);
    if (n < 0) {
      if (errno == EINTR) continue;
      std::fprintf(stderr, "ping_floor: epoll_wait: %s\n", std::strerror(errno));
      return 1;
    }
    for (int i = 0; i < n; ++i) {
      int fd = events[i].data.fd;
      if (fd == sfd) return 0;
      if (fd != ls) {
        serve_ready(fd, events[i].events);
      } else if (!accept_ready()) {
        return 1;
      }
    }
  }
}
