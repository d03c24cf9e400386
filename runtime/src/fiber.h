// fiber.h: the fiber control block and its states.
//
// A Fiber lives in a record of its own (fiber_pool.h), followed by its task
// (the callable and its arguments, moved in by spawn) when the task fits
// there. Its stack is bound when it first runs, on the worker that runs it
// (bind_stack_on_first_run); a task too large for the record is put at the
// top of a stack bound at spawn instead. Spawning therefore costs no heap
// allocation and, for a small task, no stack: a record from the worker's
// cache and two placement-news.
//
// States say where the fiber lives and who may touch it:
//
//   kRunnable  in exactly one run queue: a worker's ring, its `next` slot, or
//              the injector. The queue owns it; whoever pops it runs it.
//   kRunning   on a worker thread, which owns it until it switches out.
//   kParked    off every queue. Whoever holds the wake right for it (a wait
//              queue entry, a timer, the poller) may call ready() once.
//   kDead      its task has returned; the worker that switched out of it is
//              returning the stack (and this block) to its cache.
//
// Transitions, each made only through set_state(), which checks the old state:
//   spawn            (new)     -> kRunnable
//   worker picks it  kRunnable -> kRunning
//   yield            kRunning  -> kRunnable   (by the worker, after the switch)
//   park             kRunning  -> kParked     (by the worker, after the switch,
//                                              before the unlock step publishes it)
//   ready            kParked   -> kRunnable   (by the waker, any thread)
//   return           kRunning  -> kDead       (by the worker, after the switch)
//
// The park transition happens on the worker after the fiber's registers are
// saved, so a waker can never resume a fiber that is still running: that is
// the invariant that makes wake-ups impossible to lose or double (park.h).
#pragma once

#include <atomic>
#include <cstdint>

#include <gort/detail/wait_reason.h>

#include "context.h"
#include "fiber_pool.h"
#include "platform.h"
#include "stack.h"

namespace gort::detail {

enum class FiberState : uint8_t { kRunnable, kRunning, kParked, kDead };
const char* state_name(FiberState s);

struct Worker;

struct Fiber {
  Context ctx = nullptr;  // saved registers while not running; null until a stack is bound
  Stack stack;            // empty until a stack is bound (at the first run, or at spawn for a large task)
  std::atomic<FiberState> state{FiberState::kRunnable};
  // Why and since when the fiber is parked: written by the fiber itself on
  // its way out (note_wait), read by the fiber dump from any thread. All
  // relaxed: they order nothing, and a reader that races a park or a
  // wake-up sees the previous wait's values with the new state, or the new
  // ones with the old state (debug.cpp says why that is harmless).
  std::atomic<WaitReason> wait_reason{WaitReason::kNone};
  std::atomic<int32_t> wait_fd{-1};     // the descriptor, for waits_on_fd() reasons
  std::atomic<uint64_t> wait_since{0};  // cpu_ticks() when the wait began

  uint64_t id = 0;                     // unique, for messages (never reused)
  const char* name = nullptr;          // optional, static string from SpawnOptions
  void* task = nullptr;                // callable + arguments: in this record, or at its stack's top if large
  void (*run_task)(void*) = nullptr;   // invokes *task
  void (*drop_task)(void*) = nullptr;  // destroys *task
  std::size_t stack_usable = 0;        // the usable size its stack is to have
  bool started = false;                // has run at least once (its task is live)
  void* entry_request = nullptr;       // first switch-in came directly from this fiber's SwitchRequest
  SanitizerContext san;                // ASan/TSan view of this stack

  // Records why the fiber is about to park: two relaxed stores and a read
  // of the cycle counter, on the fiber's own thread (park.cpp). The
  // descriptor of an I/O wait is stored by the poller before (netpoll.cpp).
  __attribute__((always_inline)) void note_wait(WaitReason why) {
    wait_reason.store(why, std::memory_order_relaxed);
    wait_since.store(cpu_ticks(), std::memory_order_relaxed);
  }

  // Changes state, checking the transition (always on: a wrong transition is a
  // lost or doubled wake-up in the making).
  // For transitions only the fiber's current owner can make (its worker
  // switching it in or out): no other thread may change the state meanwhile,
  // so a checked load and a store suffice. The store is release so that a
  // kParked written here pairs with claim_for_ready()'s acquire in a waker
  // (free on x86); the queues that hand the fiber over order the rest.
  void set_state(FiberState from, FiberState to) {
    FiberState actual = state.load(std::memory_order_relaxed);
    if (__builtin_expect(actual != from, 0)) bad_transition(actual, from, to);
    state.store(to, std::memory_order_release);
  }
  // kParked -> kRunnable, by the one party that holds the fiber's wake right
  // (it took the fiber off whatever it waited on: a wait queue under its
  // lock, a timer heap, a poller slot by CAS). Nobody else may change the
  // state meanwhile: the parked fiber is in no run queue and its worker is
  // done with it. So, as in set_state, a checked load and a store suffice;
  // the checked load still catches a fiber woken twice one after the other.
  // acquire: pairs with the worker's release store of kParked (which the
  // lock or CAS that handed us the fiber orders as well); the run queue that
  // publishes the fiber orders our store before whoever runs it.
  // Sanitizer builds keep a CAS, which also catches two wakers racing at
  // the same instant: a bug detector, not something correctness needs, and
  // a locked instruction on every wake-up everywhere else.
  void claim_for_ready() {
#if GORT_SANITIZER_BUILD
    FiberState expected = FiberState::kParked;
    if (!state.compare_exchange_strong(expected, FiberState::kRunnable, std::memory_order_acq_rel))
      bad_transition(expected, FiberState::kParked, FiberState::kRunnable);
#else
    FiberState actual = state.load(std::memory_order_acquire);
    if (__builtin_expect(actual != FiberState::kParked, 0))
      bad_transition(actual, FiberState::kParked, FiberState::kRunnable);
    state.store(FiberState::kRunnable, std::memory_order_relaxed);
#endif
  }
  [[noreturn]] void bad_transition(FiberState actual, FiberState from, FiberState to);
};

static_assert(sizeof(Fiber) + 64 <= kFiberRecordBytes, "a fiber's record must leave room for a small task");

// Where a task of this size and alignment goes in f's record, or null if
// it does not fit there (then it goes on a stack bound at spawn).
inline char* record_task_space(Fiber* f, std::size_t size, std::size_t align) {
  align = align < 16 ? 16 : align;
  uintptr_t begin = (reinterpret_cast<uintptr_t>(f) + sizeof(Fiber) + align - 1) & ~(uintptr_t(align) - 1);
  uintptr_t end = reinterpret_cast<uintptr_t>(f) + kFiberRecordBytes;
  if (align > kFiberRecordBytes || size > end - begin) return nullptr;
  return reinterpret_cast<char*>(begin);
}

}  // namespace gort::detail
