// context.h: machine context switching, on Boost.Context's fcontext.
//
// This is the only file that includes Boost.Context. fcontext is the raw
// assembly backend: a context is a saved stack pointer, a switch saves the
// callee-saved registers on the current stack and restores them from the
// target's. jump() hands one pointer across each switch; the runtime uses it
// to tell a resumed fiber which worker resumed it and to tell the scheduler
// what the suspending fiber asked for (see worker.cpp).
//
// Sanitizers cannot see these switches on their own, so every switch is
// bracketed by SwitchAnnotations: ASan must learn the new stack's bounds
// (__sanitizer_start/finish_switch_fiber), TSan the new logical thread
// (__tsan_switch_to_fiber). GORT_ASAN and GORT_TSAN, the build's sanitizer
// switches (set by CMake from GORT_SANITIZE), select them; in normal builds
// the annotations compile away.
#pragma once

#include <boost/context/detail/fcontext.hpp>
#include <cstddef>
#include <cstdint>

#include "platform.h"

#if GORT_ASAN
#include <sanitizer/asan_interface.h>
#endif
#if GORT_TSAN
#include <sanitizer/tsan_interface.h>
#endif

namespace gort::detail {

using Context = boost::context::detail::fcontext_t;
using Transfer = boost::context::detail::transfer_t;
using ContextEntry = void (*)(Transfer);

// Prepares a context that, when first jumped to, runs entry(Transfer) on the
// stack [top - size, top). entry must never return.
inline Context make_context(void* top, std::size_t size, ContextEntry entry) {
  return boost::context::detail::make_fcontext(top, size, entry);
}

// Suspends the caller, resumes `to`, passing `data`. Returns when something
// jumps back, with that side's saved context and its data.
inline Transfer jump(Context to, void* data) { return boost::context::detail::jump_fcontext(to, data); }

// Like jump(), but first runs fn(transfer from the caller) on `to`'s stack;
// what fn returns is what `to` sees as the result of its own jump.
inline Transfer jump_ontop(Context to, void* data, Transfer (*fn)(Transfer)) {
  return boost::context::detail::ontop_fcontext(to, data, fn);
}

// Per-context sanitizer bookkeeping; empty in normal builds.
struct SanitizerContext {
#if GORT_ASAN
  void* fake_stack = nullptr;          // ASan's fake stack of this context while suspended
  const void* stack_bottom = nullptr;  // lowest usable address
  std::size_t stack_size = 0;
#endif
#if GORT_TSAN
  void* tsan_fiber = nullptr;    // TSan's logical thread for this context
  bool owns_tsan_fiber = false;  // created by us, destroyed by destroy()
#endif

  // A fiber context: stack [bottom, bottom + size).
  void init_fiber([[maybe_unused]] const void* bottom, [[maybe_unused]] std::size_t size) {
#if GORT_ASAN
    stack_bottom = bottom;
    stack_size = size;
    __asan_unpoison_memory_region(bottom, size);  // a reused stack keeps its dead frames' redzones
#endif
#if GORT_TSAN
    tsan_fiber = __tsan_create_fiber(0);
    owns_tsan_fiber = true;
#endif
  }
  // The calling thread's own context (a worker's scheduler loop).
  void init_thread() {
#if GORT_TSAN
    tsan_fiber = __tsan_get_current_fiber();
    owns_tsan_fiber = false;
#endif
  }
  // Must run on a different context than this one.
  void destroy() {
#if GORT_TSAN
    if (owns_tsan_fiber && tsan_fiber) __tsan_destroy_fiber(tsan_fiber);
    tsan_fiber = nullptr;
#endif
  }
};

// Whether the context being suspended will run again: a dying one is never
// resumed, so ASan may free its fake stack.
enum class Suspended : uint8_t { kWillResume, kDying };

// Call immediately before jump(): `from` is the context being suspended, `to`
// the one being resumed.
inline void annotate_switch_begin([[maybe_unused]] SanitizerContext* from, [[maybe_unused]] SanitizerContext* to,
                                  [[maybe_unused]] Suspended suspended) {
#if GORT_ASAN
  __sanitizer_start_switch_fiber(suspended == Suspended::kDying ? nullptr : &from->fake_stack, to->stack_bottom,
                                 to->stack_size);
#endif
#if GORT_TSAN
  __tsan_switch_to_fiber(to->tsan_fiber, 0);
#endif
}

// Call immediately after jump() returns (or first thing in a context's entry):
// `self` is the context now running. A thread context learns its own stack
// bounds from ASan here, the first time a fiber switches back to it.
inline void annotate_switch_end([[maybe_unused]] SanitizerContext* self, [[maybe_unused]] SanitizerContext* from) {
#if GORT_ASAN
  const void* from_bottom = nullptr;
  std::size_t from_size = 0;
  __sanitizer_finish_switch_fiber(self->fake_stack, &from_bottom, &from_size);
  if (from && from->stack_bottom == nullptr) {
    from->stack_bottom = from_bottom;
    from->stack_size = from_size;
  }
#endif
}

}  // namespace gort::detail
