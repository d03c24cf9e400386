// platform.cpp: see platform.h.
#include "platform.h"

#include <linux/futex.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <cstdarg>
#include <cstdio>

namespace gort::detail {

void futex_wait(std::atomic<uint32_t>* word, uint32_t expected, int64_t deadline_ns) {
  timespec ts{};
  timespec* tsp = nullptr;
  if (deadline_ns != kNever) {
    ts.tv_sec = deadline_ns / 1'000'000'000;
    ts.tv_nsec = deadline_ns % 1'000'000'000;
    tsp = &ts;
  }
  // FUTEX_WAIT_BITSET takes an absolute CLOCK_MONOTONIC deadline, so a
  // spurious wake-up does not stretch the total wait.
  syscall(SYS_futex, reinterpret_cast<uint32_t*>(word), FUTEX_WAIT_BITSET | FUTEX_PRIVATE_FLAG,
          expected, tsp, nullptr, FUTEX_BITSET_MATCH_ANY);
}

void futex_wake(std::atomic<uint32_t>* word, int count) {
  syscall(SYS_futex, reinterpret_cast<uint32_t*>(word), FUTEX_WAKE | FUTEX_PRIVATE_FLAG, count,
          nullptr, nullptr, 0);
}

void fatal(const char* fmt, ...) {
  std::fflush(nullptr);
  char buf[1024];
  va_list ap;
  va_start(ap, fmt);
  int n = std::vsnprintf(buf, sizeof buf, fmt, ap);
  va_end(ap);
  if (n < 0) n = 0;
  if (n > int(sizeof buf) - 1) n = sizeof buf - 1;
  std::fprintf(stderr, "fatal error: %.*s\n", n, buf);
  std::fflush(stderr);
  _exit(2);
}

std::size_t page_size() {
  static const std::size_t size = std::size_t(sysconf(_SC_PAGESIZE));
  return size;
}

}  // namespace gort::detail
