// worker_stack.cpp: see <gort/worker_stack.h>.
//
// Each worker thread lazily maps one 8 MiB stack (MAP_NORESERVE, a guard
// page below it) the first time one of its fibers asks for it, and starts one
// context on it: a loop that takes a call, runs it, and jumps back to the
// caller, suspended there until the next call. A call is two jumps; the loop
// never returns. The calling fiber cannot migrate meanwhile: it does not
// park, so it stays on this thread, and the thread-local stack is the right
// one for the whole call. Nested calls run directly (they are already on the
// big stack).
//
// Why one long-lived context and not a fresh one per call, abandoned after
// it (make_context is only a few stores): a context abandoned mid-function
// never runs its epilogue, so under TSan every call would leave one frame on
// the worker stack's shadow call stack, which is bounded and unchecked. The
// loop enters its frame once per thread.
#include <gort/detail/preempt.h>
#include <gort/worker_stack.h>
#include <sys/mman.h>

#include <new>

#include "context.h"
#include "platform.h"
#include "scheduler.h"

namespace gort::detail {

namespace {

constexpr std::size_t kWorkerStackSize = 8u << 20;

void loop(Transfer t);

struct WorkerStack {
  char* base = nullptr;  // guard page at base, usable above it
  Context parked{};      // loop(), suspended between calls
  SanitizerContext san;  // the big stack's sanitizer view
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
    parked = make_context(base + page_size() + kWorkerStackSize, kWorkerStackSize, loop);
  }
};

thread_local WorkerStack tls_stack;

struct Call {
  void (*fn)(void*);
  void* arg;
  WorkerStack* stack;
  SanitizerContext* caller;  // the fiber's sanitizer view
};

// The context on the worker stack: one call per turn, then back to the
// caller, whose context arrives with each call.
void loop(Transfer t) {
  for (;;) {
    auto* call = static_cast<Call*>(t.data);
    annotate_switch_end(&call->stack->san, nullptr);
    call->fn(call->arg);  // never throws: on_worker_stack catches into the call
    annotate_switch_begin(&call->stack->san, call->caller, Suspended::kWillResume);
    t = jump(t.fctx, nullptr);
  }
}

}  // namespace

bool on_worker_stack_now() {
  Worker* w = current_worker();
  return w != nullptr && w->own.in_worker_stack;
}

// The flag that says a call is running lives on the Worker, not here: park
// reads it from the worker it already holds (no thread-local read).
void run_on_worker_stack(void (*fn)(void*), void* arg) {
  // A runtime call that does not block: the time slice is checked first
  // (a server running one request after another on the worker stack makes
  // few other calls). After a yield the fiber may be on another worker.
  preemption_point();
  Worker* w = current_worker();
  Fiber* self = w != nullptr ? w->current.load(std::memory_order_relaxed) : nullptr;
  if (self == nullptr || w->own.in_worker_stack) {
    fn(arg);
    return;
  }
  WorkerStack& ws = tls_stack;
  ws.ensure();
  Call call{fn, arg, &ws, &self->san};
  w->own.in_worker_stack = true;
  annotate_switch_begin(&self->san, &ws.san, Suspended::kWillResume);
  ws.parked = jump(ws.parked, &call).fctx;
  annotate_switch_end(&self->san, &ws.san);
  w->own.in_worker_stack = false;  // the same worker: the fiber did not park
}

}  // namespace gort::detail
