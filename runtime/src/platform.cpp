// platform.cpp: see platform.h.
#include "platform.h"

#include <linux/futex.h>
#include <malloc.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <unistd.h>

#include <cerrno>
#include <cstdarg>
#include <cstdio>
#include <cstdlib>
#include <cstring>

#if GORT_ASAN
#include <sanitizer/asan_interface.h>
#endif

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
  syscall(SYS_futex, reinterpret_cast<uint32_t*>(word), FUTEX_WAIT_BITSET | FUTEX_PRIVATE_FLAG, expected, tsp, nullptr,
          FUTEX_BITSET_MATCH_ANY);
}

void futex_wake(std::atomic<uint32_t>* word, int count) {
  syscall(SYS_futex, reinterpret_cast<uint32_t*>(word), FUTEX_WAKE | FUTEX_PRIVATE_FLAG, count, nullptr, nullptr, 0);
}

namespace {

[[noreturn]] void vfatal(const char* detail, const char* fmt, va_list ap) {
  std::fflush(nullptr);
  char buf[1024];
  int n = std::vsnprintf(buf, sizeof buf, fmt, ap);
  if (n < 0) n = 0;
  if (n > int(sizeof buf) - 1) n = sizeof buf - 1;
  std::fprintf(stderr, "fatal error: %.*s\n", n, buf);
  if (detail != nullptr) std::fprintf(stderr, "\n%s", detail);
  std::fflush(stderr);
  _exit(2);
}

}  // namespace

void fatal(const char* fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vfatal(nullptr, fmt, ap);
}

void fatal_with(const char* detail, const char* fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vfatal(detail, fmt, ap);
}

std::size_t page_size() {
  static const std::size_t size = std::size_t(sysconf(_SC_PAGESIZE));
  return size;
}

void unpoison_fresh_memory([[maybe_unused]] void* p, [[maybe_unused]] std::size_t n) {
#if GORT_ASAN
  __asan_unpoison_memory_region(p, n);
#endif
}

void release_free_heap_memory() {
#if defined(__GLIBC__)
  malloc_trim(0);
#endif
}

namespace {

#ifndef SYS_process_madvise
#define SYS_process_madvise 440
#endif
constexpr int kPidfdSelf = -10001;  // PIDFD_SELF_PROCESS (linux/pidfd.h, 6.15)

long process_madvise_self(const iovec* v, std::size_t n, int advice) {
  return syscall(SYS_process_madvise, kPidfdSelf, v, n, advice, 0);
}

// One page of scratch memory advised through the sentinel: an older kernel
// answers EBADF (no sentinel), EINVAL (advice not allowed) or ENOSYS.
// GORT_MADVISE=single forces the one-call-per-range fallback, for tests.
bool probe_batched() {
  if (const char* env = std::getenv("GORT_MADVISE"); env && std::strcmp(env, "single") == 0) return false;
  std::size_t page = page_size();
  void* p = mmap(nullptr, page, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (p == MAP_FAILED) return false;
  iovec v{p, page};
  bool ok = process_madvise_self(&v, 1, MADV_DONTNEED) == long(page);
  munmap(p, page);
  return ok;
}

}  // namespace

bool MadviseBatch::batched() {
  static const bool ok = probe_batched();
  return ok;
}

void MadviseBatch::add(void* addr, std::size_t len) {
  if (ranges_.size() == std::size_t(kMaxRanges)) flush();
  ranges_.push_back(Range{addr, len});
}

bool MadviseBatch::flush() {
  static_assert(sizeof(Range) == sizeof(iovec));
  std::size_t done = 0;
  if (!ranges_.empty() && batched()) {
    auto* v = reinterpret_cast<const iovec*>(ranges_.data());
    std::size_t total = 0;
    for (const Range& r : ranges_) total += r.len;
    ++syscalls_;
    long rc = process_madvise_self(v, ranges_.size(), advice_);
    // A short count means the kernel stopped at a range it refused: the
    // ranges before it are done, the rest get one madvise each below.
    if (rc > 0) {
      for (std::size_t advised = 0; done < ranges_.size() && advised + ranges_[done].len <= std::size_t(rc); ++done)
        advised += ranges_[done].len;
    }
    if (rc == long(total)) done = ranges_.size();
  }
  for (; done < ranges_.size(); ++done) {
    ++syscalls_;
    if (madvise(ranges_[done].base, ranges_[done].len, advice_) != 0) failed_ = true;
  }
  ranges_.clear();
  bool ok = !failed_;
  failed_ = false;
  return ok;
}

}  // namespace gort::detail
