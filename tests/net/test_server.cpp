// gort::net::Server across worker counts: a handler per connection in its
// own fiber; shutdown ends idle connections with end of file, waits for a
// busy handler, and past its deadline closes the rest and cancels the
// handlers' context; max_connections answers the busy reply; conn_context
// numbers connections in accept order; serve() after shutdown fails. Every
// case checks that no fiber (WorkersTest::run) and no descriptor
// (NetServer::TearDown) outlives it.
#include <dirent.h>

#include <set>
#include <vector>

#include "net_support.h"

using namespace std::chrono_literals;
using namespace gort::net;

namespace {

int open_fds() {
  int n = 0;
  if (DIR* d = opendir("/proc/self/fd")) {
    while (readdir(d) != nullptr) ++n;
    closedir(d);
  }
  return n;
}

// The server's listener, its serve() fiber, and what serve() returned.
class Running {
 public:
  explicit Running(Server& server) : server_(server) {
    auto ln = listen_tcp("127.0.0.1:0");
    EXPECT_TRUE(ln) << ln.error().message();
    listener_ = std::move(*ln);
    address_ = listener_.local_address()->to_string();
    served_.add(1);
    go_spawn([this] {
      auto r = server_.serve(listener_);
      serve_error_ = r ? Errc::kSystem : r.error().code();
      serve_returned_ = !r.ok();
      served_.done();
    });
  }
  // Waits for serve() (shutdown() has returned by then, so it has too).
  ~Running() { served_.wait(); }
  const std::string& address() const { return address_; }
  // After shutdown: serve() returned kClosed.
  void expect_serve_closed() {
    served_.wait();
    EXPECT_TRUE(serve_returned_);
    EXPECT_EQ(serve_error_, Errc::kClosed);
  }

 private:
  Server& server_;
  Listener listener_;
  std::string address_;
  gort::WaitGroup served_;
  Errc serve_error_ = Errc::kSystem;
  bool serve_returned_ = false;
};

Conn dial(const std::string& address) {
  auto c = dial_tcp(address, 5s);
  EXPECT_TRUE(c) << c.error().message();
  if (!c) return Conn();
  c->set_read_deadline(gort::Clock::now() + 10s);  // no test hangs on a missing reply
  return std::move(*c);
}

// Parks until `n` handlers have started (they send on `started`).
void await(gort::Chan<int>& started, int n) {
  for (int i = 0; i < n; ++i) ASSERT_TRUE(started.recv());
}

}  // namespace

class NetServer : public gort_test::WorkersTest {
 protected:
  void TearDown() override { EXPECT_EQ(open_fds(), fds_before_) << "descriptors leaked"; }
  int fds_before_ = open_fds();
};
GORT_INSTANTIATE(NetServer);

TEST_P(NetServer, EachConnectionGetsItsOwnHandlerFiber) {
  run([] {
    gort::Mutex mu;
    std::set<uint64_t> fibers;
    Server server([&](const gort::Context&, Conn& conn) {
      {
        std::lock_guard lock(mu);
        fibers.insert(gort::fiber_id());
      }
      while (auto line = conn.read_line())
        if (!conn.write_all("echo " + *line + "\n")) return;
    });
    Running running(server);
    std::vector<Conn> clients;
    for (int i = 0; i < 4; ++i) clients.push_back(dial(running.address()));
    // All four are served at once: each is answered while the others stay open.
    for (int i = 3; i >= 0; --i) {
      ASSERT_TRUE(clients[i].write_all("hi " + std::to_string(i) + "\n"));
      auto back = clients[i].read_line();
      ASSERT_TRUE(back) << back.error().message();
      EXPECT_EQ(*back, "echo hi " + std::to_string(i));
    }
    EXPECT_EQ(server.connections(), 4u);
    {
      std::lock_guard lock(mu);
      EXPECT_EQ(fibers.size(), 4u);
      EXPECT_EQ(fibers.count(gort::fiber_id()), 0u);
    }
    clients.clear();  // the handlers see end of file and return
    for (auto until = gort::Clock::now() + 10s; server.connections() > 0 && gort::Clock::now() < until;)
      gort::sleep_for(1ms);
    EXPECT_EQ(server.connections(), 0u);
    EXPECT_TRUE(server.shutdown(gort::Clock::now() + 10s));
    running.expect_serve_closed();
  });
}

TEST_P(NetServer, ShutdownEndsIdleConnectionsWithEndOfFile) {
  run([] {
    gort::Chan<int> started(8);
    std::atomic<int> eofs{0};
    Server server([&](const gort::Context&, Conn& conn) {
      (void)started.try_send(1);
      char buf[64];
      auto n = conn.read(buf, sizeof buf);  // idle: nothing comes
      if (!n && n.error() == Errc::kEof) ++eofs;
    });
    Running running(server);
    std::vector<Conn> clients;
    for (int i = 0; i < 3; ++i) clients.push_back(dial(running.address()));
    await(started, 3);
    auto begin = gort::Clock::now();
    auto r = server.shutdown(begin + 30s);
    EXPECT_TRUE(r) << r.error().message();
    EXPECT_LT(gort::Clock::now() - begin, 10s) << "idle connections waited for the deadline";
    EXPECT_EQ(eofs.load(), 3);
    EXPECT_TRUE(server.shutting_down());
    running.expect_serve_closed();
    for (auto& c : clients) {  // the server closed its side
      char buf[8];
      EXPECT_EQ(c.read(buf, sizeof buf).error(), Errc::kEof);
    }
  });
}

TEST_P(NetServer, ShutdownWaitsForABusyHandlerAndItsReply) {
  run([] {
    gort::Chan<int> started(1);
    std::atomic<bool> saw_eof{false};
    Server server([&](const gort::Context&, Conn& conn) {
      auto request = conn.read_line();
      if (!request) return;
      (void)started.try_send(1);
      gort::sleep_for(300ms);  // busy when the shutdown begins
      (void)conn.write_all("done " + *request + "\n");
      auto next = conn.read_line();
      saw_eof = !next && next.error() == Errc::kEof;
    });
    Running running(server);
    Conn client = dial(running.address());
    ASSERT_TRUE(client.write_all("work\n"));
    await(started, 1);
    auto begin = gort::Clock::now();
    auto r = server.shutdown(begin + 30s);
    EXPECT_TRUE(r) << r.error().message();
    EXPECT_GE(gort::Clock::now() - begin, 200ms) << "shutdown did not wait for the busy handler";
    EXPECT_TRUE(saw_eof.load());
    auto reply = client.read_line();
    ASSERT_TRUE(reply) << reply.error().message();
    EXPECT_EQ(*reply, "done work");
    EXPECT_EQ(client.read_line().error(), Errc::kEof);
    running.expect_serve_closed();
  });
}

TEST_P(NetServer, PastTheDeadlineTheRestAreClosedAndTheirContextCanceled) {
  run([] {
    gort::Chan<int> started(2);
    std::atomic<int> write_closed{0}, sleep_canceled{0};
    Server server([&](const gort::Context& ctx, Conn& conn) {
      auto request = conn.read_line();
      if (!request) return;
      (void)started.try_send(1);
      if (*request == "flood") {
        // The client never reads: this write parks once the buffers fill,
        // and a shut read side does not end it.
        std::string chunk(64 * 1024, 'x');
        for (;;) {
          auto w = conn.write_all(chunk);
          if (!w) {
            write_closed += w.error() == Errc::kClosed;
            return;
          }
        }
      }
      if (gort::sleep_for(ctx, 1h) == gort::ContextError::kCanceled) ++sleep_canceled;
    });
    Running running(server);
    Conn flooded = dial(running.address()), sleeper = dial(running.address());
    ASSERT_TRUE(flooded.write_all("flood\n"));
    ASSERT_TRUE(sleeper.write_all("sleep\n"));
    await(started, 2);
    auto begin = gort::Clock::now();
    auto r = server.shutdown(begin + 200ms);
    ASSERT_FALSE(r);
    EXPECT_EQ(r.error(), Errc::kTimeout) << r.error().message();
    EXPECT_GE(gort::Clock::now() - begin, 150ms);
    EXPECT_LT(gort::Clock::now() - begin, 10s);
    EXPECT_EQ(write_closed.load(), 1);
    EXPECT_EQ(sleep_canceled.load(), 1);
    EXPECT_EQ(server.connections(), 0u);
    running.expect_serve_closed();
  });
}

TEST_P(NetServer, ShutdownWithAContextReportsItsCancellation) {
  run([] {
    gort::Chan<int> started(1);
    Server server([&](const gort::Context& ctx, Conn&) {
      (void)started.try_send(1);
      (void)gort::sleep_for(ctx, 1h);  // ignores end of file: only the context ends it
    });
    Running running(server);
    Conn client = dial(running.address());
    await(started, 1);
    auto [ctx, cancel] = gort::with_cancel(gort::background());
    go_spawn([stop = cancel] {
      gort::sleep_for(50ms);
      stop();
    });
    auto r = server.shutdown(ctx);
    ASSERT_FALSE(r);
    EXPECT_EQ(r.error(), Errc::kCanceled) << r.error().message();
    running.expect_serve_closed();
  });
}

TEST_P(NetServer, PastMaxConnectionsANewClientGetsTheBusyReply) {
  run([] {
    ServerOptions options;
    options.max_connections = 2;
    options.busy_reply = "ERROR server busy\n";
    options.fiber_name = "test connection";
    Server server(
        [](const gort::Context&, Conn& conn) {
          if (!conn.write_all("hello\n")) return;
          char buf[64];
          while (conn.read(buf, sizeof buf)) {
          }
        },
        options);
    Running running(server);
    std::vector<Conn> held;
    for (int i = 0; i < 2; ++i) {
      held.push_back(dial(running.address()));
      auto hello = held.back().read_line();
      ASSERT_TRUE(hello) << hello.error().message();
      EXPECT_EQ(*hello, "hello");
    }
    Conn extra = dial(running.address());
    auto busy = extra.read_line();
    ASSERT_TRUE(busy) << busy.error().message();
    EXPECT_EQ(*busy, "ERROR server busy");
    EXPECT_EQ(extra.read_line().error(), Errc::kEof);
    EXPECT_EQ(server.refused(), 1u);
    // A place that frees up goes to the next client.
    held.pop_back();
    bool served = false;
    for (auto until = gort::Clock::now() + 10s; !served && gort::Clock::now() < until;) {
      Conn again = dial(running.address());
      auto line = again.read_line();
      served = line && *line == "hello";
      if (!served) gort::sleep_for(5ms);
    }
    EXPECT_TRUE(served);
    held.clear();
    EXPECT_TRUE(server.shutdown(gort::Clock::now() + 10s));
    running.expect_serve_closed();
  });
}

TEST_P(NetServer, ConnContextRunsInAcceptOrderAndDerivesFromTheServers) {
  static const gort::ContextKey<int> kNumber{"connection number"};
  run([] {
    ServerOptions options;
    int next = 1;  // only the serve() fiber touches it
    options.conn_context = [&next](const gort::Context& base, Conn&) {
      return gort::with_value(base, kNumber, next++);
    };
    Server server(
        [](const gort::Context& ctx, Conn& conn) {
          const int* n = ctx.value(kNumber);
          if (!conn.write_all("conn " + std::to_string(n ? *n : 0) + "\n")) return;
          (void)gort::sleep_for(ctx, 1h);  // until step 3 cancels the server's context
        },
        options);
    Running running(server);
    std::vector<Conn> clients;
    for (int i = 0; i < 5; ++i) clients.push_back(dial(running.address()));  // queued in this order
    for (int i = 0; i < 5; ++i) {
      auto line = clients[i].read_line();
      ASSERT_TRUE(line) << line.error().message();
      EXPECT_EQ(*line, "conn " + std::to_string(i + 1));
    }
    auto r = server.shutdown(gort::Clock::now() + 100ms);  // handlers wait on their context only
    ASSERT_FALSE(r);
    EXPECT_EQ(r.error(), Errc::kTimeout);
    EXPECT_EQ(server.connections(), 0u);
    running.expect_serve_closed();
  });
}

TEST_P(NetServer, ServeAfterShutdownFailsAtOnce) {
  run([] {
    Server server([](const gort::Context&, Conn&) {});
    EXPECT_TRUE(server.shutdown(gort::Clock::now() + 10s));  // nothing to wait for
    auto ln = listen_tcp("127.0.0.1:0");
    ASSERT_TRUE(ln);
    auto r = server.serve(*ln);
    ASSERT_FALSE(r);
    EXPECT_EQ(r.error(), Errc::kClosed);
    EXPECT_TRUE(ln->is_open()) << "the caller's listener is the caller's";
  });
}

TEST_P(NetServer, DestroyingAServerThatServesIsAFatalError) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  EXPECT_EXIT(
      {
        gort::Config config;
        config.workers = workers();
        gort::run(config, [] {
          auto ln = listen_tcp("127.0.0.1:0");
          auto* server = new Server([](const gort::Context&, Conn&) {});
          go_spawn([&] { (void)server->serve(*ln); });
          gort::sleep_for(20ms);
          delete server;
        });
      },
      ::testing::ExitedWithCode(2), "fatal error: gort::net::Server destroyed while 1 serve");
}
