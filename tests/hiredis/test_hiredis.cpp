// gort::hiredis against a real redis-server (started here on a free
// loopback port, without persistence), across worker counts.
#include <gtest/gtest.h>

#include <netinet/in.h>
#include <signal.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <string>
#include <thread>

#include <gort/gort.h>
#include <gort/hiredis.h>

#include "support.h"

extern char** environ;

using namespace std::chrono_literals;
using gort::hiredis::Connection;
using gort::hiredis::Value;
using gort::net::Errc;

namespace {

int free_port() {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a = gort_test::loopback(0);
  socklen_t len = sizeof a;
  bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a);
  getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len);
  close(fd);
  return ntohs(a.sin_port);
}

bool accepts(int port) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a = gort_test::loopback(port);
  bool ok = connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0;
  close(fd);
  return ok;
}

// A redis-server of our own; killed (and reaped) by stop() or the destructor.
// A server that exits instead of listening (its port taken meanwhile) is
// started again on another port, a few times.
class RedisServer {
 public:
  RedisServer() {
    for (int attempt = 0; attempt < 5 && pid_ <= 0; ++attempt) start(gort_test::unused_listen_port());
  }
  ~RedisServer() { stop(); }
  void stop() {
    if (pid_ <= 0) return;
    kill(pid_, SIGKILL);
    waitpid(pid_, nullptr, 0);
    pid_ = -1;
  }
  bool running() const { return pid_ > 0 && accepts(port_); }
  int port() const { return port_; }

 private:
  void start(int port) {
    port_ = port;
    std::string arg = std::to_string(port);
    const char* argv[] = {GORT_REDIS_SERVER, "--port", arg.c_str(),  "--bind",  "127.0.0.1", "--save", "",
                          "--appendonly",    "no",     "--loglevel", "warning", nullptr};
    if (posix_spawn(&pid_, GORT_REDIS_SERVER, nullptr, nullptr, const_cast<char**>(argv), environ) != 0) {
      pid_ = -1;
      return;
    }
    for (int i = 0; i < 500; ++i) {
      if (waitpid(pid_, nullptr, WNOHANG) == pid_) {  // it exited: not listening
        pid_ = -1;
        return;
      }
      if (accepts(port_)) return;
      std::this_thread::sleep_for(10ms);
    }
  }

  int port_ = 0;
  pid_t pid_ = -1;
};

class Hiredis : public gort_test::WorkersTest {
 protected:
  void SetUp() override { ASSERT_TRUE(redis_.running()) << "could not start " GORT_REDIS_SERVER; }
  RedisServer redis_;
};

TEST_P(Hiredis, CommandsGetTheirReplies) {
  int port = redis_.port();
  run([port] {
    auto redis = Connection::connect("127.0.0.1", port);
    ASSERT_TRUE(redis) << redis.error().message();
    auto& r = **redis;
    auto set = r.command("SET %s %s", "greeting", "hello");
    ASSERT_TRUE(set) << set.error().message();
    EXPECT_EQ(set->type, Value::kStatus);
    EXPECT_EQ(set->str, "OK");
    auto get = r.command("GET %s", "greeting");
    ASSERT_TRUE(get);
    EXPECT_EQ(get->type, Value::kString);
    EXPECT_EQ(get->str, "hello");
    EXPECT_EQ(r.command("GET %s", "nothing")->type, Value::kNil);
    std::string binary("a\0b\nc", 5);
    ASSERT_TRUE(r.command_argv({"SET", "bin", binary}));
    EXPECT_EQ(r.command_argv({"GET", "bin"})->str, binary);
    ASSERT_TRUE(r.command("RPUSH list a b c"));
    auto list = r.command("LRANGE list 0 -1");
    ASSERT_TRUE(list);
    ASSERT_EQ(list->type, Value::kArray);
    ASSERT_EQ(list->elements.size(), 3u);
    EXPECT_EQ(list->elements[2].str, "c");
    auto wrong = r.command("INCR %s", "greeting");  // not a number: Redis says so, the connection stays
    ASSERT_TRUE(wrong);
    EXPECT_EQ(wrong->type, Value::kError);
    EXPECT_NE(wrong->str.find("not an integer"), std::string::npos) << wrong->str;
    EXPECT_TRUE(r.connected());
  });
}

TEST_P(Hiredis, ManyFibersShareOneConnection) {
  int port = redis_.port();
  run([port] {
    auto redis = Connection::connect("127.0.0.1", port);
    ASSERT_TRUE(redis) << redis.error().message();
    const int fibers = 50, each = 40;
    gort::WaitGroup wg;
    std::atomic<int> failures{0};
    wg.add(fibers);
    for (int i = 0; i < fibers; ++i) {
      go_spawn([&] {
        for (int k = 0; k < each; ++k) {
          auto n = (*redis)->command("INCR counter");
          if (!n || n->type != Value::kInteger) ++failures;
        }
        wg.done();
      });
    }
    wg.wait();
    EXPECT_EQ(failures.load(), 0);
    auto total = (*redis)->command("GET counter");
    ASSERT_TRUE(total);
    EXPECT_EQ(total->str, std::to_string(fibers * each));
  });
}

TEST_P(Hiredis, ALostServerFailsCommandsClearly) {
  run([this] {
    auto redis = Connection::connect("127.0.0.1", redis_.port());
    ASSERT_TRUE(redis) << redis.error().message();
    ASSERT_TRUE((*redis)->command("PING"));
    redis_.stop();
    auto after = (*redis)->command("PING");
    ASSERT_FALSE(after);
    EXPECT_EQ(after.error(), Errc::kClosed);
    EXPECT_NE(after.error().message().find("redis 127.0.0.1:"), std::string::npos) << after.error().message();
    EXPECT_FALSE((*redis)->connected());
    EXPECT_EQ((*redis)->command("PING").error(), Errc::kClosed);
  });
}

TEST_P(Hiredis, ConnectRefusedIsAnError) {
  run([] {
    auto redis = Connection::connect("127.0.0.1", free_port());
    ASSERT_FALSE(redis);
    EXPECT_NE(redis.error().message().find("redis 127.0.0.1:"), std::string::npos) << redis.error().message();
  });
}

TEST_P(Hiredis, SubscriberGetsEveryMessageInOrderThroughASmallBuffer) {
  int port = redis_.port();
  run([port] {
    auto sub = gort::hiredis::Subscriber::connect("127.0.0.1", port, /*buffer=*/4);
    ASSERT_TRUE(sub) << sub.error().message();
    auto pub = Connection::connect("127.0.0.1", port);
    ASSERT_TRUE(pub) << pub.error().message();
    ASSERT_TRUE((*sub)->subscribe("room:a"));
    ASSERT_TRUE((*sub)->subscribe("room:b"));
    const int n = 500;  // far more than the buffer: the reader waits for us, nothing is dropped
    go_spawn([&] {
      for (int i = 0; i < n; ++i) (void)(*pub)->command("PUBLISH %s %d", i % 2 ? "room:b" : "room:a", i);
    });
    for (int i = 0; i < n; ++i) {
      auto m = (*sub)->messages().recv();
      ASSERT_TRUE(m.has_value()) << "the stream ended at " << i;
      EXPECT_EQ(m->channel, i % 2 ? "room:b" : "room:a");
      ASSERT_EQ(m->payload, std::to_string(i)) << "out of order or lost";
      if (i % 100 == 0) gort::sleep_for(1ms);  // a slow consumer now and then
    }
    ASSERT_TRUE((*sub)->unsubscribe("room:b"));
    ASSERT_TRUE((*pub)->command("PUBLISH room:b ignored"));
    ASSERT_TRUE((*pub)->command("PUBLISH room:a last"));
    auto m = (*sub)->messages().recv();
    ASSERT_TRUE(m.has_value());
    EXPECT_EQ(m->payload, "last") << "a message of an unsubscribed channel arrived";
  });
}

TEST_P(Hiredis, ALostServerEndsTheSubscription) {
  run([this] {
    auto sub = gort::hiredis::Subscriber::connect("127.0.0.1", redis_.port());
    ASSERT_TRUE(sub) << sub.error().message();
    ASSERT_TRUE((*sub)->subscribe("room"));
    redis_.stop();
    EXPECT_FALSE((*sub)->messages().recv().has_value()) << "the stream should end when Redis goes away";
    EXPECT_FALSE((*sub)->connected());
    EXPECT_EQ((*sub)->subscribe("other").error(), Errc::kClosed);
  });
}

GORT_INSTANTIATE(Hiredis);

}  // namespace
