// gdb_target: a gort program for test_gdb.py to look into -- named fibers
// parked in known functions (one on a socket, whose descriptor it prints
// first), then "ready" on stdout, then it waits to be killed (a sleeping
// fiber keeps the deadlock detector quiet).
#include <chrono>
#include <cstdio>

#include <sys/socket.h>

#include <gort/detail/netpoll.h>
#include <gort/gort.h>

using namespace std::chrono_literals;

__attribute__((noinline)) void sleepy_function() {
  gort::sleep_for(1h);
  asm volatile("" ::: "memory");  // not a tail call: the frame stays
}

__attribute__((noinline)) void waiting_on_channel(gort::Chan<int>& c) {
  (void)c.recv();
  asm volatile("" ::: "memory");
}

// Parks reading a socket nobody writes to (through the runtime's poller:
// this program does not link gort::net).
void waiting_on_socket(int fd) {
  int err = 0;
  gort::detail::PollDesc* pd = gort::detail::poll_open(fd, &err);
  if (pd == nullptr) return;
  (void)gort::detail::poll_prepare(pd, gort::detail::PollMode::kRead);
  (void)gort::detail::poll_wait(pd, gort::detail::PollMode::kRead, gort::detail::WaitReason::kIoRead);
}

int main() {
  int fds[2];
  if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, fds) != 0) return 1;
  std::printf("socket %d\n", fds[0]);
  return gort::run([&fds] {
    gort::Chan<int> never;
    gort::spawn(gort::SpawnOptions{0, "socket reader"}, [&fds] { waiting_on_socket(fds[0]); });
    gort::spawn(gort::SpawnOptions{0, "sleeper"}, [] { sleepy_function(); });
    for (int i = 0; i < 3; ++i)
      gort::spawn(gort::SpawnOptions{0, "channel waiter"}, [&never] { waiting_on_channel(never); });
    gort::sleep_for(50ms);  // they park
    std::printf("ready\n");
    std::fflush(stdout);
    gort::sleep_for(1h);
    return 0;
  });
}
