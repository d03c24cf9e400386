// gort::net with a gort::Context (cancel unblocks dial/accept/read/write
// with kCanceled, a context deadline gives kTimeout, the object stays
// usable), Go-style error messages, listen_tcp outside a fiber, and the
// fatal error of value() on an error.
#include <gort/context.h>

#include "net_support.h"

using namespace std::chrono_literals;
using namespace gort::net;
using gort_test::EchoServer;

class NetContext : public gort_test::WorkersTest {
 protected:
  void SetUp() override { GTEST_FLAG_SET(death_test_style, "threadsafe"); }
};
GORT_INSTANTIATE(NetContext);

namespace {

// A connected pair over loopback: `client` dialed, `server` accepted.
struct Pair {
  Listener ln;
  Conn client, server;
};

Pair connected_pair() {
  Pair p;
  auto ln = listen_tcp("127.0.0.1:0");
  EXPECT_TRUE(ln) << ln.error().message();
  p.ln = std::move(*ln);
  auto c = dial_tcp(p.ln.local_address()->to_string(), 5s);
  EXPECT_TRUE(c) << c.error().message();
  p.client = std::move(*c);
  auto s = p.ln.accept();
  EXPECT_TRUE(s) << s.error().message();
  p.server = std::move(*s);
  return p;
}

// Cancels after `delay`, from another fiber.
void cancel_later(const gort::CancelFunc& cancel, std::chrono::milliseconds delay) {
  go_spawn([cancel, delay] {
    gort::sleep_for(delay);
    cancel();
  });
}

}  // namespace

TEST_P(NetContext, CancelUnblocksReadAndTheConnStaysUsable) {
  run([] {
    Pair p = connected_pair();
    auto [ctx, cancel] = gort::with_cancel(gort::background());
    cancel_later(cancel, 20ms);
    char buf[16];
    auto n = p.client.read(ctx, buf, sizeof buf);
    ASSERT_FALSE(n);
    EXPECT_EQ(n.error(), Errc::kCanceled) << n.error().message();
    EXPECT_NE(n.error().message().find("read tcp 127.0.0.1:"), std::string::npos) << n.error().message();
    EXPECT_NE(n.error().message().find("operation was canceled"), std::string::npos);
    // Done before the call: fails at once, consumes nothing.
    ASSERT_TRUE(p.server.write_all("hi"));
    EXPECT_EQ(p.client.read(ctx, buf, sizeof buf).error(), Errc::kCanceled);
    // Without the context the connection reads on, no deadline left behind.
    auto m = p.client.read(buf, sizeof buf);
    ASSERT_TRUE(m) << m.error().message();
    EXPECT_EQ(std::string(buf, *m), "hi");
  });
}

TEST_P(NetContext, UserDeadlineSurvivesACancel) {
  run([] {
    Pair p = connected_pair();
    auto start = gort::Clock::now();
    p.client.set_read_deadline(start + 300ms);
    auto [ctx, cancel] = gort::with_cancel(gort::background());
    cancel_later(cancel, 10ms);
    char buf[4];
    EXPECT_EQ(p.client.read(ctx, buf, sizeof buf).error(), Errc::kCanceled);
    auto n = p.client.read(buf, sizeof buf);  // the user's deadline still applies
    EXPECT_EQ(n.error(), Errc::kTimeout);
    EXPECT_GE(gort::Clock::now() - start, 300ms);
  });
}

TEST_P(NetContext, ContextDeadlineIsATimeout) {
  run([] {
    Pair p = connected_pair();
    auto [ctx, cancel] = gort::with_timeout(gort::background(), 30ms);
    char buf[4];
    auto n = p.client.read(ctx, buf, sizeof buf);
    EXPECT_EQ(n.error(), Errc::kTimeout) << n.error().message();
    auto line = p.client.read_line(ctx);
    EXPECT_EQ(line.error(), Errc::kTimeout);
    cancel();
  });
}

TEST_P(NetContext, ReadLineWithContext) {
  run([] {
    Pair p = connected_pair();
    auto [ctx, cancel] = gort::with_timeout(gort::background(), 10s);
    ASSERT_TRUE(p.server.write_all("one\ntwo\n"));
    EXPECT_EQ(*p.client.read_line(ctx), "one");
    EXPECT_EQ(*p.client.read_line(ctx), "two");
    cancel_later(cancel, 10ms);
    EXPECT_EQ(p.client.read_line(ctx).error(), Errc::kCanceled);
  });
}

TEST_P(NetContext, CancelUnblocksAWriteToASilentPeer) {
  run([] {
    Pair p = connected_pair();  // the server side never reads
    auto [ctx, cancel] = gort::with_cancel(gort::background());
    cancel_later(cancel, 50ms);
    std::string big(1 << 20, 'x');
    Result<void> r;
    for (int i = 0; i < 256 && r; ++i) r = p.client.write_all(ctx, big);
    ASSERT_FALSE(r);
    EXPECT_EQ(r.error(), Errc::kCanceled) << r.error().message();
    EXPECT_NE(r.error().message().find("write tcp "), std::string::npos);
  });
}

TEST_P(NetContext, CancelUnblocksAcceptAndTheListenerStaysUsable) {
  run([] {
    auto ln = listen_tcp("127.0.0.1:0");
    ASSERT_TRUE(ln);
    auto [ctx, cancel] = gort::with_cancel(gort::background());
    cancel_later(cancel, 20ms);
    auto c = ln->accept(ctx);
    ASSERT_FALSE(c);
    EXPECT_EQ(c.error(), Errc::kCanceled);
    EXPECT_NE(c.error().message().find("accept tcp 127.0.0.1:"), std::string::npos) << c.error().message();
    std::string address = ln->local_address()->to_string();
    go_spawn([address] {
      auto d = dial_tcp(address, 5s);
      EXPECT_TRUE(d);
      gort::sleep_for(20ms);
    });
    auto [live, cancel_live] = gort::with_timeout(gort::background(), 10s);
    auto accepted = ln->accept(live);
    EXPECT_TRUE(accepted) << accepted.error().message();
    cancel_live();
  });
}

TEST_P(NetContext, DialWithContext) {
  run([] {
    EchoServer server;
    auto [ctx, cancel] = gort::with_timeout(gort::background(), 10s);
    auto c = dial_tcp(ctx, server.address());
    ASSERT_TRUE(c) << c.error().message();
    ASSERT_TRUE(c->write_all(ctx, "ping\n"));
    EXPECT_EQ(*c->read_line(ctx), "ping");
    cancel();
    auto late = dial_tcp(ctx, server.address());
    ASSERT_FALSE(late);
    EXPECT_EQ(late.error(), Errc::kCanceled);
    EXPECT_EQ(late.error().message(), "dial tcp " + server.address() + ": operation was canceled");
    auto bg = dial_tcp(gort::background(), server.address(), 5s);
    EXPECT_TRUE(bg);
  });
}

TEST_P(NetContext, ErrorsNameTheOperationAndAddress) {
  run([] {
    auto ln = listen_tcp("127.0.0.1:0");
    ASSERT_TRUE(ln);
    std::string address = ln->local_address()->to_string();
    auto again = listen_tcp(address);
    ASSERT_FALSE(again);
    EXPECT_EQ(again.error().message().rfind("listen tcp " + address + ": address already in use", 0), 0u)
        << again.error().message();
    ASSERT_TRUE(ln->close());
    auto c = dial_tcp(address, 5s);
    ASSERT_FALSE(c);
    EXPECT_EQ(c.error().message(), "dial tcp " + address + ": connection refused");
    EXPECT_STREQ(c.error().op(), ("dial tcp " + address).c_str());
    EXPECT_EQ(c.error(), Errc::kRefused);  // the code is still what callers test
  });
}

TEST_P(NetContext, EofStaysBare) {
  run([] {
    Pair p = connected_pair();
    ASSERT_TRUE(p.server.close());
    char buf[4];
    auto n = p.client.read(buf, sizeof buf);
    EXPECT_EQ(n.error(), Errc::kEof);
    EXPECT_EQ(n.error().message(), "end of file");
  });
}

TEST_P(NetContext, ListenOutsideAFiber) {
  // Before gort::run: listening never waits, so it works; the listener
  // joins the runtime its first accept runs under.
  auto ln = listen_tcp("127.0.0.1:0");
  ASSERT_TRUE(ln) << ln.error().message();
  ln->set_deadline(gort::Clock::now() + 1h);
  std::string address = ln->local_address()->to_string();
  run([&] {
    go_spawn([address] {
      auto d = dial_tcp(address, 5s);
      EXPECT_TRUE(d);
      gort::sleep_for(20ms);
    });
    auto c = ln->accept();
    EXPECT_TRUE(c) << c.error().message();
    ASSERT_TRUE(ln->close());
  });
}

TEST_P(NetContext, ValueOfAnErrorIsAFatalError) {
  int n = workers();
  EXPECT_EXIT(gort::run(gort::Config{.workers = n},
                        [] {
                          auto c = dial_tcp("127.0.0.1:1", 5s);
                          (void)c.value();
                        }),
              ::testing::ExitedWithCode(2),
              "fatal error: gort::net::Result::value\\(\\) on an error: dial tcp 127.0.0.1:1: connection refused");
}
