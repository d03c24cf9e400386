// gort::net TCP behaviour over loopback, across worker counts.
#include <netinet/in.h>
#include <sys/socket.h>

#include <fstream>

#include "net_support.h"

using namespace std::chrono_literals;
using namespace gort::net;
using gort_test::EchoServer;

class Tcp : public gort_test::WorkersTest {};

TEST_P(Tcp, EchoOneConnection) {
  run([] {
    EchoServer server;
    auto c = dial_tcp(server.address(), 5s);
    ASSERT_TRUE(c) << c.error().message();
    ASSERT_TRUE(c->write_all("hello\nworld\n"));
    auto l1 = c->read_line();
    ASSERT_TRUE(l1) << l1.error().message();
    EXPECT_EQ(*l1, "hello");
    auto l2 = c->read_line();
    ASSERT_TRUE(l2);
    EXPECT_EQ(*l2, "world");
    EXPECT_EQ(c->remote_address()->to_string(), server.address());
    ASSERT_TRUE(c->close());
    EXPECT_EQ(c->close().error(), Errc::kClosed);
    EXPECT_EQ(c->read(nullptr, 0).error(), Errc::kClosed);
  });
}

TEST_P(Tcp, ManyConnectionsInProcess) {
  run([] {
    EchoServer server;
    const int n = 200;
    gort::WaitGroup wg;
    std::atomic<int> ok{0};
    wg.add(n);
    for (int i = 0; i < n; ++i) {
      go_spawn([&, i] {
        auto c = dial_tcp(server.address());
        if (c) {
          std::string msg = "line " + std::to_string(i) + "\n";
          bool good = true;
          for (int r = 0; r < 10 && good; ++r) {
            auto l = c->write_all(msg) ? c->read_line() : Result<std::string>(Errc::kClosed);
            good = l && *l + "\n" == msg;
          }
          if (good) ++ok;
        }
        wg.done();
      });
    }
    wg.wait();
    EXPECT_EQ(ok.load(), n);
  });
}

TEST_P(Tcp, IPv6Loopback) {
  std::ifstream if6("/proc/net/if_inet6");
  std::string line;
  if (!std::getline(if6, line)) GTEST_SKIP() << "no IPv6 in this environment";
  run([] {
    EchoServer server("[::1]:0");
    ASSERT_EQ(server.address().substr(0, 6), "[::1]:");
    auto c = dial_tcp(server.address(), 5s);
    ASSERT_TRUE(c) << c.error().message();
    ASSERT_TRUE(c->write_all("v6\n"));
    EXPECT_EQ(*c->read_line(), "v6");
  });
}

TEST_P(Tcp, HalfClose) {
  run([] {
    auto ln = listen_tcp("127.0.0.1:0");
    ASSERT_TRUE(ln);
    gort::WaitGroup wg;
    wg.add(1);
    go_spawn([&] {
      auto c = ln->accept();
      ASSERT_TRUE(c);
      std::string got;
      char buf[64];
      for (;;) {
        auto n = c->read(buf, sizeof buf);
        if (!n) {
          EXPECT_EQ(n.error(), Errc::kEof) << n.error().message();
          break;
        }
        got.append(buf, *n);
      }
      EXPECT_EQ(got, "request");
      // Our write side still works after the peer's write side closed.
      EXPECT_TRUE(c->write_all("reply"));
      EXPECT_TRUE(c->close());
      wg.done();
    });
    auto c = dial_tcp(ln->local_address()->to_string());
    ASSERT_TRUE(c);
    ASSERT_TRUE(c->write_all("request"));
    ASSERT_TRUE(c->shutdown(Shutdown::kWrite));
    EXPECT_EQ(c->write("x", 1).error(), Errc::kBrokenPipe);
    std::string reply;
    char buf[64];
    for (;;) {
      auto n = c->read(buf, sizeof buf);
      if (!n) {
        EXPECT_EQ(n.error(), Errc::kEof);
        break;
      }
      reply.append(buf, *n);
    }
    EXPECT_EQ(reply, "reply");
    wg.wait();
  });
}

TEST_P(Tcp, PeerResetIsReset) {
  run([] {
    auto ln = listen_tcp("127.0.0.1:0");
    ASSERT_TRUE(ln);
    gort::WaitGroup wg;
    wg.add(1);
    go_spawn([&] {
      auto c = ln->accept();
      ASSERT_TRUE(c);
      char buf[16];
      auto n = c->read(buf, sizeof buf);  // parks until the reset arrives
      EXPECT_FALSE(n);
      if (!n) {
        EXPECT_EQ(n.error(), Errc::kReset) << n.error().message();
      }
      wg.done();
    });
    auto c = dial_tcp(ln->local_address()->to_string());
    ASSERT_TRUE(c);
    gort::sleep_for(50ms);  // let the server park in read
    linger lg{1, 0};        // close with RST instead of FIN
    ASSERT_EQ(setsockopt(c->native_handle(), SOL_SOCKET, SO_LINGER, &lg, sizeof lg), 0);
    ASSERT_TRUE(c->close());
    wg.wait();
  });
}

TEST_P(Tcp, CloseFromAnotherFiberWakesBlockedReadAndWrite) {
  run([] {
    EchoServer server;
    auto reader = dial_tcp(server.address());
    ASSERT_TRUE(reader);
    // The writer's peer never reads: its write fills the buffers and parks.
    auto ln = listen_tcp("127.0.0.1:0");
    auto writer = dial_tcp(ln->local_address()->to_string());
    ASSERT_TRUE(writer);
    auto silent = ln->accept();
    ASSERT_TRUE(silent);
    gort::WaitGroup wg;
    wg.add(2);
    std::atomic<int> woke{0};
    go_spawn([&] {
      char buf[16];
      auto n = reader->read(buf, sizeof buf);
      EXPECT_EQ(n.error(), Errc::kClosed);
      ++woke;
      wg.done();
    });
    go_spawn([&] {
      std::string big(1 << 20, 'x');
      Result<void> r;
      for (int i = 0; i < 64 && r; ++i) r = writer->write_all(big);
      EXPECT_FALSE(r);
      if (!r) {
        EXPECT_EQ(r.error(), Errc::kClosed) << r.error().message();
      }
      ++woke;
      wg.done();
    });
    gort::sleep_for(100ms);
    EXPECT_EQ(woke.load(), 0);
    auto start = gort::Clock::now();
    ASSERT_TRUE(reader->close());
    ASSERT_TRUE(writer->close());
    wg.wait();
    EXPECT_LT(gort_test::elapsed_s(start), 2.0);
  });
}

TEST_P(Tcp, SlowReaderDoesNotHoldUpOthers) {
  run([] {
    EchoServer server;
    // A client that sends a lot and never reads: the server's echo of it
    // fills both socket buffers and its fiber parks in write.
    auto hog = dial_tcp(server.address());
    ASSERT_TRUE(hog);
    gort::WaitGroup wg;
    wg.add(1);
    go_spawn([&] {
      std::string chunk(64 * 1024, 'h');
      for (int i = 0; i < 256; ++i)
        if (!hog->write_all(chunk)) break;  // fails once we close it below
      wg.done();
    });
    gort::sleep_for(100ms);
    // Meanwhile other connections are served promptly.
    auto start = gort::Clock::now();
    for (int i = 0; i < 20; ++i) {
      auto c = dial_tcp(server.address(), 5s);
      ASSERT_TRUE(c);
      ASSERT_TRUE(c->write_all("ping\n"));
      auto l = c->read_line();
      ASSERT_TRUE(l);
      EXPECT_EQ(*l, "ping");
    }
    EXPECT_LT(gort_test::elapsed_s(start), 5.0);
    (void)hog->close();  // wakes our writer with kClosed; the server sees a reset
    wg.wait();
  });
}

TEST_P(Tcp, ListenOnAddressInUseIsAClearError) {
  run([] {
    auto a = listen_tcp("127.0.0.1:0");
    ASSERT_TRUE(a);
    std::string address = a->local_address()->to_string();
    auto b = listen_tcp(address);
    ASSERT_FALSE(b);
    EXPECT_EQ(b.error(), Errc::kAddressInUse);
    EXPECT_EQ(b.error().sys_errno(), EADDRINUSE);
    EXPECT_NE(b.error().message().find("address already in use"), std::string::npos) << b.error().message();
    // With SO_REUSEPORT on both, two listeners may share the port.
    ListenOptions shared;
    shared.reuse_port = true;
    auto c = listen_tcp("127.0.0.1:0", shared);
    ASSERT_TRUE(c);
    auto d = listen_tcp(c->local_address()->to_string(), shared);
    EXPECT_TRUE(d) << d.error().message();
  });
}

// A listener group: one port, every listener accepts its share, an
// acceptor per listener serves them all; a bad size is a clear error.
TEST_P(Tcp, ListenerGroupSharesOnePort) {
  run([] {
    const int nlisteners = 3, nconns = 60;
    auto group = listen_tcp_group("127.0.0.1:0", nlisteners);
    ASSERT_TRUE(group) << group.error().message();
    ASSERT_EQ(group->size(), std::size_t(nlisteners));
    std::string address = (*group)[0].local_address()->to_string();
    for (auto& ln : *group) EXPECT_EQ(ln.local_address()->to_string(), address);

    std::vector<int> accepted(nlisteners, 0);
    gort::WaitGroup acceptors;
    acceptors.add(nlisteners);
    for (int i = 0; i < nlisteners; ++i) {
      go_spawn([&, i] {
        for (;;) {
          auto c = (*group)[std::size_t(i)].accept();
          if (!c) break;
          ++accepted[std::size_t(i)];
          (void)c->write_all("hi\n");
        }
        acceptors.done();
      });
    }
    for (int i = 0; i < nconns; ++i) {
      auto c = dial_tcp(address, 5s);
      ASSERT_TRUE(c) << c.error().message();
      auto line = c->read_line();
      ASSERT_TRUE(line) << line.error().message();
      EXPECT_EQ(*line, "hi");
    }
    for (auto& ln : *group) ASSERT_TRUE(ln.close());
    acceptors.wait();
    int total = 0, serving = 0;
    for (int n : accepted) total += n, serving += n > 0;
    EXPECT_EQ(total, nconns);
    EXPECT_GE(serving, 2) << "the kernel gave every connection to one listener";

    auto none = listen_tcp_group("127.0.0.1:0", 0);
    ASSERT_FALSE(none);
    EXPECT_EQ(none.error().sys_errno(), EINVAL);
    EXPECT_NE(none.error().message().find("listen tcp 127.0.0.1:0"), std::string::npos) << none.error().message();
  });
}

TEST_P(Tcp, DialRefusedAndBadAddress) {
  run([] {
    auto ln = listen_tcp("127.0.0.1:0");
    std::string address = ln->local_address()->to_string();
    ASSERT_TRUE(ln->close());
    auto c = dial_tcp(address, 5s);
    ASSERT_FALSE(c);
    EXPECT_EQ(c.error(), Errc::kRefused);
    auto bad = dial_tcp("127.0.0.1:http");
    ASSERT_FALSE(bad);
    EXPECT_EQ(bad.error(), Errc::kInvalidAddress);
  });
}

TEST_P(Tcp, ReadLineTooLongKeepsTheBytes) {
  run([] {
    EchoServer server;
    auto c = dial_tcp(server.address());
    ASSERT_TRUE(c);
    ASSERT_TRUE(c->write_all("0123456789abcdef\nok\n"));
    auto l = c->read_line(8);
    ASSERT_FALSE(l);
    EXPECT_EQ(l.error(), Errc::kLineTooLong);
    // Nothing was consumed: the long line is still there, then the next.
    auto l2 = c->read_line(64);
    ASSERT_TRUE(l2);
    EXPECT_EQ(*l2, "0123456789abcdef");
    EXPECT_EQ(*c->read_line(8), "ok");
  });
}

TEST_P(Tcp, WaitingForIoIsNotADeadlock) {
  // The only fiber waits in accept, no timer is pending, no blocking call is
  // in flight and the process has no other thread: only a peer in another
  // process, 300 ms from now, can wake it. The deadlock detector (100 ms
  // grace) must count the I/O waiter and stay quiet.
  run([] {
    auto ln = listen_tcp("127.0.0.1:0");
    ASSERT_TRUE(ln);
    auto start = gort::Clock::now();
    pid_t pid;
    std::vector<std::string> args{GORT_NET_ECHO_CLIENT, ln->local_address()->to_string(), "1", "1", "16", "300"};
    std::vector<char*> argv;
    for (auto& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    ASSERT_EQ(posix_spawn(&pid, argv[0], nullptr, nullptr, argv.data(), environ), 0);
    auto c = ln->accept();
    ASSERT_TRUE(c) << c.error().message();
    EXPECT_GE(gort_test::elapsed_s(start), 0.3);
    char buf[16];
    std::size_t got = 0;
    while (got < sizeof buf) {
      auto n = c->read(buf + got, sizeof buf - got);
      ASSERT_TRUE(n) << n.error().message();
      got += *n;
    }
    ASSERT_TRUE(c->write_all(buf, sizeof buf));
    int status = 0;
    gort::blocking([&] { waitpid(pid, &status, 0); });
    EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0);
  });
}

GORT_INSTANTIATE(Tcp);

// A reader whose last read drained its socket lets the fibers queued on its
// worker run first, then reads what they sent meanwhile without parking: the
// poller readies nobody (net_fd.cpp). With nothing queued it parks, and the
// poller wakes it. One worker: which fibers are queued is then known.
TEST(TcpOneWorker, DrainedReaderYieldsToQueuedFibersBeforeParking) {
  int rc = gort::run(gort::Config{.workers = 1}, [] {
    auto ln = listen_tcp("127.0.0.1:0");
    ASSERT_TRUE(ln);
    auto client = dial_tcp(ln->local_address()->to_string());
    ASSERT_TRUE(client);
    auto server = ln->accept();
    ASSERT_TRUE(server);
    char buf[64];
    ASSERT_TRUE(client->write_all("x"));
    auto n = server->read(buf, sizeof buf);
    ASSERT_TRUE(n);
    ASSERT_EQ(*n, 1u);  // fewer bytes than asked: drained

    uint64_t before = gort::metrics().netpoll_wakeups;
    go_spawn([&] { EXPECT_TRUE(client->write_all("y")); });
    n = server->read(buf, sizeof buf);
    ASSERT_TRUE(n);
    EXPECT_EQ(std::string(buf, *n), "y");
    EXPECT_EQ(gort::metrics().netpoll_wakeups, before) << "the reader parked, and the poller woke it";

    gort::WaitGroup wrote;
    wrote.add(1);
    go_spawn([&] {
      gort::sleep_for(20ms);  // parked: nothing queued when the reader looks again
      EXPECT_TRUE(client->write_all("z"));
      wrote.done();
    });
    n = server->read(buf, sizeof buf);
    ASSERT_TRUE(n);
    EXPECT_EQ(std::string(buf, *n), "z");
    EXPECT_GT(gort::metrics().netpoll_wakeups, before) << "the reader found no data and did not wait for the poller";
    wrote.wait();
  });
  EXPECT_EQ(rc, 0);
}
