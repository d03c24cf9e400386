// accept() when the process is out of file descriptors: it must back off
// (sleep, doubling up to 1 s) instead of spinning on EMFILE, and resume
// once descriptors are free. Runs in a death-test child with a lowered
// RLIMIT_NOFILE (hard limit too: the runtime raises the soft one to it).
#include <fcntl.h>
#include <sys/resource.h>
#include <unistd.h>

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

}  // namespace

TEST(Emfile, AcceptBacksOffAndResumes) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  EXPECT_EXIT(_exit(emfile_scenario()), ::testing::ExitedWithCode(0), "");
}
