// worker_stack.cpp: see <gort/worker_stack.h>.
//
// Each worker thread lazily maps one 8 MiB stack (MAP_NORESERVE, a guard
// page below it) the first time one of its fibers asks for it. A call makes a
// fresh context on that stack (make_context is a few stores), jumps to it,
// runs the function, and jumps back; the context is then abandoned. The
// calling fiber cannot migrate meanwhile: it does not park, so it stays on
// this thread, and the thread-local stack is the right one for the whole
// call. Nested calls run directly (they are already on the big stack).
#include <gort/worker_stack.h>
#include <sys/mman.h>

#include <new>

#include "context.h"
#include "platform.h"
#include "scheduler.h"

namespace gort::detail {

namespace {

constexpr std::size_t kWorkerStackSize = 8u << 20;

struct WorkerStack {
  char* base = nullptr;   // guard page at base, usable above it
  SanitizerContext san;   // the big stack's sanitizer view
  ~WorkerStack() {
    if (base) {
      san.destroy();
      munmap(base, kWorkerStackSize + page_size());
    }
  }
  void ensure() {
    if (base) return;
    void* p = mmap(nullptr, kWorkerStackSize + page_size(), PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE | MAP_STACK, -1, 0);
    if (p == MAP_FAILED) throw std::bad_alloc();
    base = static_cast<char*>(p);
    mprotect(base, page_size(), PROT_NONE);
    san.init_fiber(base + page_size(), kWorkerStackSize);
  }
};

thread_local WorkerStack tls_stack;

struct Call {
  void (*fn)(void*);
  void* arg;
  SanitizerContext* caller;  // the fiber's (or thread's) sanitizer view
};

void entry(Transfer t) {
  auto* call = static_cast<Call*>(t.data);
  annotate_switch_end(&tls_stack.san, nullptr);
  call->fn(call->arg);  // never throws: on_worker_stack catches into the call
  annotate_switch_begin(&tls_stack.san, call->caller, true);
  jump(t.fctx, nullptr);
  __builtin_unreachable();
}

}  // namespace

bool on_worker_stack_now() {
  Worker* w = current_worker();
  return w != nullptr && w->in_worker_stack;
}

// The flag that says a call is running lives on the Worker, not here: park
// reads it from the worker it already holds (no thread-local read).
void run_on_worker_stack(void (*fn)(void*), void* arg) {
  Worker* w = current_worker();
  if (w == nullptr || w->current == nullptr || w->in_worker_stack) {
    fn(arg);
    return;
  }
  WorkerStack& ws = tls_stack;
  ws.ensure();
  Fiber* self = w->current;
  Call call{fn, arg, &self->san};
  w->in_worker_stack = true;
  char* top = ws.base + page_size() + kWorkerStackSize;
  Context ctx = make_context(top, kWorkerStackSize, entry);
  annotate_switch_begin(&self->san, &ws.san, false);
  jump(ctx, &call);
  annotate_switch_end(&self->san, &ws.san);
  w->in_worker_stack = false;  // the same worker: the fiber did not park
}

}  // namespace gort::detail
