// overflow.cpp: see overflow.h.
#include "overflow.h"

#include <signal.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cstdint>
#include <cstring>
#include <mutex>

#include "backtrace.h"
#include "scheduler.h"

namespace gort::detail {

namespace {

// A recursion that overflowed has thousands of identical frames: the
// innermost ones say where.
constexpr int kOverflowFramesShown = 32;

struct sigaction previous_segv;
struct sigaction previous_bus;

// Async-signal-safe formatting: no stdio in a signal handler.
void put(char*& p, char* end, const char* s) {
  while (*s && p < end) *p++ = *s++;
}
void put_num(char*& p, char* end, uint64_t v, int base = 10) {
  char tmp[24];
  int n = 0;
  do {
    tmp[n++] = "0123456789abcdef"[v % base];
    v /= base;
  } while (v);
  while (n && p < end) *p++ = tmp[--n];
}

void chain(int sig, siginfo_t* info, void* uctx) {
  struct sigaction& prev = sig == SIGBUS ? previous_bus : previous_segv;
  if (prev.sa_flags & SA_SIGINFO) {
    if (prev.sa_sigaction) return prev.sa_sigaction(sig, info, uctx);
  } else if (prev.sa_handler != SIG_DFL && prev.sa_handler != SIG_IGN) {
    return prev.sa_handler(sig);
  }
  // Default action: restore it and return; the faulting instruction re-runs
  // and the kernel delivers the signal with the default disposition.
  signal(sig, SIG_DFL);
}

void on_fault(int sig, siginfo_t* info, void* uctx) {
  Worker* w = current_worker();
  Fiber* f = w ? w->current.load(std::memory_order_relaxed) : nullptr;
  const char* addr = static_cast<const char*>(info->si_addr);
  if (f != nullptr && addr >= f->stack.base && addr < f->stack.usable_bottom()) {
    char buf[512];
    char* p = buf;
    char* end = buf + sizeof buf - 1;
    put(p, end, "fatal error: stack overflow in fiber ");
    put_num(p, end, f->id);
    if (f->name) {
      put(p, end, " \"");
      put(p, end, f->name);
      put(p, end, "\"");
    }
    put(p, end, " (stack reservation ");
    put_num(p, end, f->stack.usable() / 1024);
    put(p, end, " KiB, guard hit at 0x");
    put_num(p, end, uintptr_t(addr), 16);
    put(p, end, "); raise it with SpawnOptions::stack_size or GORT_STACK_SIZE\n\n");
    [[maybe_unused]] ssize_t rc = write(STDERR_FILENO, buf, size_t(p - buf));
    // The innermost frames, from the fault's context, with only
    // async-signal-safe calls (backtrace.h): the handler may have
    // interrupted malloc or stdio, so no names are demangled.
    write_signal_backtrace(STDERR_FILENO, static_cast<ucontext_t*>(uctx), kOverflowFramesShown);
    _exit(2);
  }
  chain(sig, info, uctx);
}

}  // namespace

void install_overflow_handler() {
  static std::once_flag once;
  std::call_once(once, [] {
    struct sigaction sa;
    std::memset(&sa, 0, sizeof sa);
    sa.sa_sigaction = on_fault;
    sa.sa_flags = SA_SIGINFO | SA_ONSTACK;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGSEGV, &sa, &previous_segv);
    sigaction(SIGBUS, &sa, &previous_bus);
  });
}

AltStack::AltStack() {
  stack_t old;
  if (sigaltstack(nullptr, &old) == 0 && !(old.ss_flags & SS_DISABLE)) {
    // The thread already has one (a sanitizer's, or the application's): keep it.
    return;
  }
  size_ = 64 * 1024;
  mem_ = mmap(nullptr, size_, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (mem_ == MAP_FAILED) {
    mem_ = nullptr;
    return;
  }
  stack_t ss{};
  ss.ss_sp = mem_;
  ss.ss_size = size_;
  installed_ = sigaltstack(&ss, nullptr) == 0;
}

AltStack::~AltStack() {
  if (installed_) {
    stack_t ss{};
    ss.ss_flags = SS_DISABLE;
    sigaltstack(&ss, nullptr);
  }
  if (mem_) munmap(mem_, size_);
}

}  // namespace gort::detail
