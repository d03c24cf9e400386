// support.h: shared fixture for runtime tests.
//
// Every runtime test runs across worker counts (marl's habit): derive the
// fixture from WorkersTest and instantiate with GORT_WORKER_COUNTS. run()
// boots a runtime with that many workers, runs the body as the main fiber,
// and before returning checks that nothing leaked: every fiber the body
// spawned has finished and its stack and record are back in the pools.
#pragma once

#include <gort/gort.h>
#include <gtest/gtest.h>

#include "export_test.h"

#include <fcntl.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <vector>

namespace gort_test {

// 127.0.0.1:port, for bind and connect.
inline sockaddr_in loopback(int port) {
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(uint16_t(port));
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  return a;
}

// A TCP port on 127.0.0.1 that nothing listens on now, for a server a test
// starts in another process. It lies below the kernel's ephemeral range
// (32768 and up by default): a port the kernel hands out for port 0 may be
// given to an outgoing connection of a test running beside this one before
// the server binds it.
inline int unused_listen_port() {
  static std::atomic<uint32_t> seq{0};
  for (;;) {
    uint32_t r = uint32_t(getpid()) * 2654435761u + seq.fetch_add(1) * 40503u;
    int port = 20000 + int(r % 12000);
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in a = loopback(port);
    bool unused = bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0;
    close(fd);
    if (unused) return port;
  }
}

// Pages of [from, to) that hold memory of their own: present and mapped
// only here (/proc/self/pagemap bits 63 and 56). A page that maps the
// kernel's shared zero page (a stack's sentinel page) costs nothing and is
// not counted.
inline int resident_pages(char* from, char* to) {
  std::size_t page = gort::detail::page_size();
  std::size_t first = reinterpret_cast<uintptr_t>(from) / page, n = std::size_t(to - from) / page;
  std::vector<uint64_t> entries(n);
  int fd = open("/proc/self/pagemap", O_RDONLY);
  EXPECT_GE(fd, 0);
  EXPECT_EQ(pread(fd, entries.data(), n * 8, off_t(first * 8)), ssize_t(n * 8));
  close(fd);
  int count = 0;
  for (uint64_t e : entries) count += (e >> 63 & 1) && (e >> 56 & 1);
  return count;
}

// Sanitizer builds run stress loops at a fraction of their size.
#if defined(GORT_SANITIZER_BUILD)
inline constexpr int kScale = 10;
#else
inline constexpr int kScale = 1;
#endif

// TSan maps shadow memory of its own for every mapping and fiber, so tests
// that count the process's mappings skip that part under it.
#if GORT_TSAN
inline constexpr bool kThreadSanitizer = true;
#else
inline constexpr bool kThreadSanitizer = false;
#endif

// Spawns n fibers that all park, runs at_peak while every one of them is
// parked, then releases them and waits until all have returned. From a
// fiber.
template <class F>
void with_parked_fibers(int n, F at_peak) {
  gort::WaitGroup parked, release, finished;
  parked.add(n);
  release.add(1);
  finished.add(n);
  for (int i = 0; i < n; ++i)
    go_spawn([&] {
      parked.done();
      release.wait();
      finished.done();
    });
  parked.wait();
  at_peak();
  release.done();
  finished.wait();
}

class WorkersTest : public ::testing::TestWithParam<int> {
 protected:
  int workers() const { return GetParam(); }

  // Runs body as the main fiber of a fresh runtime and checks for leaks.
  void run(const std::function<void()>& body, gort::Config config = {}) {
    config.workers = workers();
    int rc = gort::run(config, [&] {
      EXPECT_EQ(gort::worker_count(), workers());
      body();
      wait_for_quiescence();
    });
    EXPECT_EQ(rc, 0);
    // After the runtime stopped: nothing alive, every stack returned.
    gort::detail::TeardownCounts left = gort::detail::last_teardown();
    EXPECT_EQ(left.live_fibers, 0) << "fibers still alive when the runtime stopped";
    EXPECT_EQ(left.stacks_in_use, 0) << "stacks not returned when the runtime stopped";
    EXPECT_EQ(left.records_in_use, 0) << "fiber records not returned when the runtime stopped";
  }

  // Fibers that signalled completion may still be on their way out; give
  // them a bounded time, then require that only the main fiber is left.
  static void wait_for_quiescence() {
    auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
    while (gort::stats().live_fibers > 1 && std::chrono::steady_clock::now() < deadline)
      gort::sleep_for(std::chrono::milliseconds(1));
    gort::Stats s = gort::stats();
    EXPECT_EQ(s.live_fibers, 1) << "fibers leaked (only the main fiber should remain)";
    EXPECT_EQ(s.stacks_in_use, 1) << "stacks leaked (only the main fiber's should be in use)";
  }
};

#define GORT_WORKER_COUNTS ::testing::Values(1, 2, 4, 8)
#define GORT_INSTANTIATE(suite)                                \
  INSTANTIATE_TEST_SUITE_P(Workers, suite, GORT_WORKER_COUNTS, \
                           [](const ::testing::TestParamInfo<int>& i) { return "w" + std::to_string(i.param); })

}  // namespace gort_test
