// 10 000 concurrent loopback connections against a gort echo server on a
// 1-worker and a 2-worker runtime (1 000 under sanitizers). The client is a
// separate process (net_echo_client): the fd limit here is 20 000, and both
// ends of 10 000 connections in one process would not fit.
#include <sys/resource.h>

#include "net_support.h"

using namespace std::chrono_literals;

class EchoMany : public gort_test::WorkersTest {};

TEST_P(EchoMany, TenThousandConcurrentConnections) {
  int conns = 10'000 / gort_test::kScale;
  rlimit rl{};
  getrlimit(RLIMIT_NOFILE, &rl);
  if (rl.rlim_max != RLIM_INFINITY && rlim_t(conns + 64) > rl.rlim_max)
    GTEST_SKIP() << "RLIMIT_NOFILE hard limit " << rl.rlim_max << " is below " << conns + 64;
  run([&] {
    gort_test::EchoServer server;
    auto start = gort::Clock::now();
    int rc = gort_test::run_echo_client(server.address(), conns, 3, 512);
    double took = gort_test::elapsed_s(start);
    EXPECT_EQ(rc, 0);
    EXPECT_EQ(server.accepted(), conns);
    // The client holds every connection open before sending anything.
    EXPECT_EQ(server.peak_connections(), conns);
    EXPECT_LT(took, 120.0);
    std::printf("[ info     ] %d connections x 3 round trips of 512 B: %.2f s\n", conns, took);
    server.stop();
  });
}

INSTANTIATE_TEST_SUITE_P(Workers, EchoMany, ::testing::Values(1, 2),
                         [](const ::testing::TestParamInfo<int>& i) { return "w" + std::to_string(i.param); });
