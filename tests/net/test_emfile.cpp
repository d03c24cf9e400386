// accept() when the process is out of file descriptors: it must back off
// (sleep, doubling up to 1 s) instead of spinning on EMFILE, and resume
// once descriptors are free. Runs in a death-test child with a lowered
// RLIMIT_NOFILE (hard limit too: the runtime raises the soft one to it).
#include <fcntl.h>
#include <sys/resource.h>
#include <unistd.h>

#include <cstdio>
#include <vector>

#include "net_support.h"

using namespace std::chrono_literals;
using namespace gort::net;

namespace {

double cpu_seconds() {
  rusage ru{};
  getrusage(RUSAGE_SELF, &ru);
  return double(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) + 1e-6 * double(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec);
}

// Exit status: 0 on success, else the number of the failed check.
int emfile_scenario() {
  rlimit rl{256, 256};
  if (setrlimit(RLIMIT_NOFILE, &rl) != 0) return 10;
  gort::Config config;
  config.workers = 1;  // the checking fiber reads the listener's counter
  int result = 0;
  gort::run(config, [&] {
    auto ln = listen_tcp("127.0.0.1:0");
    if (!ln) {
      result = 11;
      return;
    }
    std::string address = ln->local_address()->to_string();
    // Fill the descriptor table.
    std::vector<int> filler;
    for (int fd; (fd = open("/dev/null", O_RDONLY | O_CLOEXEC)) >= 0;) filler.push_back(fd);
    if (errno != EMFILE) {
      result = 12;
      return;
    }
    // Free one for the client socket, then connect: the kernel completes
    // the handshake, so accept4 has a connection to take and no fd for it.
    close(filler.back());
    filler.pop_back();
    auto client = dial_tcp(address, 5s);
    if (!client) {
      result = 13;
      return;
    }
    std::atomic<bool> accepted{false};
    gort::WaitGroup wg;
    wg.add(1);
    go_spawn([&] {
      auto c = ln->accept();
      accepted = c.ok();
      wg.done();
    });
    double cpu0 = cpu_seconds();
    gort::sleep_for(1500ms);
    double cpu = cpu_seconds() - cpu0;
    if (accepted) {
      result = 14;
      return;
    }
    if (ln->accept_backoffs() < 3) {
      result = 15;
      return;
    }  // 5+10+20+40+... ms
    if (ln->accept_backoffs() > 20) {
      result = 16;
      return;
    }  // that would be spinning
    if (cpu > 0.5) {
      result = 17;
      return;
    }  // spinning burns ~1.5 s
    // Free descriptors: accept resumes within its current backoff (<= 1 s).
    for (int fd : filler) close(fd);
    auto t0 = gort::Clock::now();
    wg.wait();
    if (!accepted) {
      result = 18;
      return;
    }
    if (gort::Clock::now() - t0 > 3s) {
      result = 19;
      return;
    }
    (void)ln->close();
  });
  return result;
}

// A listener made before the runtime is registered with its poller at its
// first call that would wait. When the kernel refuses that for want of
// memory (the poller's descriptor table, reserved by that first call, does
// not fit under RLIMIT_AS here), the wait reports ENOMEM, and accept backs
// off and tries again as for any shortage, rather than failing at once as
// if it were not in a fiber. Returns 0 on success, else the number of the
// failed check.
int unregistered_scenario() {
  auto ln = listen_tcp("127.0.0.1:0");  // no runtime yet: registered later
  if (!ln) return 20;
  std::string address = ln->local_address()->to_string();
  rlimit saved{};
  if (getrlimit(RLIMIT_AS, &saved) != 0) return 21;
  int result = 0;
  gort::run(gort::Config{.workers = 1}, [&] {
    long pages = 0;
    if (FILE* statm = std::fopen("/proc/self/statm", "r")) {
      if (std::fscanf(statm, "%ld", &pages) != 1) pages = 0;
      std::fclose(statm);
    }
    // Room for small mappings, not for the poller's table (256 MiB).
    rlimit tight = saved;
    tight.rlim_cur = rlim_t(pages) * rlim_t(sysconf(_SC_PAGESIZE)) + (rlim_t(64) << 20);
    if (pages <= 0 || setrlimit(RLIMIT_AS, &tight) != 0) {
      result = 22;
      return;
    }
    std::atomic<bool> returned{false}, accepted{false};
    std::atomic<int> code{-1};
    go_spawn([&] {
      auto c = ln->accept();
      accepted = c.ok();
      if (!c) code = int(c.error().code());
      returned = true;
    });
    gort::sleep_for(200ms);  // it tried to register and is backing off
    setrlimit(RLIMIT_AS, &saved);
    if (returned) {
      result = code == int(Errc::kNotInFiber) ? 23 : 24;  // 23: the old report
      return;
    }
    auto client = dial_tcp(address, 5s);
    if (!client) {
      result = 25;
      (void)ln->close();
      return;
    }
    for (int i = 0; i < 500 && !returned; ++i) gort::sleep_for(20ms);  // backoff is at most 1 s
    if (!returned) {
      result = 26;
      (void)ln->close();  // accept returns kClosed
      for (int i = 0; i < 500 && !returned; ++i) gort::sleep_for(20ms);
      return;
    }
    if (!accepted) result = 27;
  });
  setrlimit(RLIMIT_AS, &saved);
  return result;
}

}  // namespace

TEST(Emfile, AListenerTheRuntimeCannotRegisterBacksOffAndResumes) {
#if defined(GORT_SANITIZER_BUILD)
  GTEST_SKIP() << "the sanitizers need address space of their own";
#endif
  EXPECT_EQ(unregistered_scenario(), 0);
}

TEST(Emfile, AcceptBacksOffAndResumes) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  EXPECT_EXIT(_exit(emfile_scenario()), ::testing::ExitedWithCode(0), "");
}
