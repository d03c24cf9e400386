// Time slices at gort::net calls: a reader that always finds data never
// parks, and must still let the other fibers run (runtime/src/monitor.h).
#include <chrono>

#include "net_support.h"

using namespace std::chrono_literals;
using gort_test::WorkersTest;
using Clock = std::chrono::steady_clock;

class PreemptIo : public WorkersTest {
 protected:
  void SetUp() override { setenv("GORT_STUCK_WARN_MS", "0", 1); }
};
GORT_INSTANTIATE(PreemptIo);

// As many readers as workers, each reading one byte at a time from a socket
// whose peer filled it first: every read returns at once. A 10 ms ticker
// must keep ticking, on the workers themselves (preemption at read).
TEST_P(PreemptIo, ReadersThatAlwaysFindDataLetOthersRun) {
  run([&] {
    int n = workers();
    auto ln = gort::net::listen_tcp("127.0.0.1:0");
    ASSERT_TRUE(ln) << ln.error().message();
    std::string address = ln->local_address()->to_string();
    constexpr std::size_t kBytes = 256 * 1024;  // stays in the socket buffers: no writer needed meanwhile
    std::vector<gort::net::Conn> servers, clients;
    for (int i = 0; i < n; ++i) {
      auto c = gort::net::dial_tcp(address);
      ASSERT_TRUE(c) << c.error().message();
      auto s = ln->accept();
      ASSERT_TRUE(s) << s.error().message();
      clients.push_back(std::move(*c));
      servers.push_back(std::move(*s));
    }
    std::string payload(kBytes, 'x');
    std::atomic<int> ticks{0};
    std::atomic<bool> stop{false};
    gort::WaitGroup ticker, readers;
    ticker.add(1);
    go_spawn([&] {
      while (!stop.load()) {
        gort::sleep_for(10ms);
        ticks.fetch_add(1);
      }
      ticker.done();
    });
    // Writers fill each socket; a reader starts only when its socket holds
    // everything, so its reads never find it empty.
    readers.add(n);
    for (int i = 0; i < n; ++i) {
      ASSERT_TRUE(clients[std::size_t(i)].write_all(payload));
      go_spawn([&, i] {
        auto end = Clock::now() + 400ms;
        std::size_t got = 0;
        char c;
        while (Clock::now() < end && got < kBytes) {
          auto r = servers[std::size_t(i)].read(&c, 1);
          if (!r) break;
          got += *r;
        }
        readers.done();
      });
    }
    int before = ticks.load();
    readers.wait();
    int during = ticks.load() - before;
    stop = true;
    ticker.wait();
    EXPECT_GE(during, 5) << "the ticker starved while readers found data on every read";
    EXPECT_GT(gort::stats().preemptions, 0u);
  });
}
