// overflow.h: turning a fiber stack overflow into a clear fatal error.
//
// A fiber that runs past the bottom of its stack touches its guard region
// and the kernel raises SIGSEGV. The handler runs on a per-worker alternate
// signal stack (the fiber's own stack is exhausted) and, if the faulting
// address lies in the running fiber's guard, prints
//   fatal error: stack overflow in fiber 42 "name" (stack reservation 256 KiB ...)
// and exits with status 2. Any other SIGSEGV goes to the handler that was
// installed before ours (or the default action), so real crashes and the
// sanitizers keep their own reports.
#pragma once

#include <cstddef>

namespace gort::detail {

// Installs the process-wide SIGSEGV/SIGBUS handler once.
void install_overflow_handler();

// RAII: this thread's alternate signal stack while it is a worker.
class AltStack {
 public:
  AltStack();
  ~AltStack();
  AltStack(const AltStack&) = delete;
  AltStack& operator=(const AltStack&) = delete;

 private:
  void* mem_ = nullptr;
  std::size_t size_ = 0;
  bool installed_ = false;
};

}  // namespace gort::detail
