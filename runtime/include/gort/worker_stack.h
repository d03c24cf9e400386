// worker_stack.h: running deep, non-blocking work on the worker's own big
// stack, like Go's runtime does with systemstack.
//
//   uint64_t r = gort::on_worker_stack([&] { return deep_recursion(n); });
//
// A fiber's stack is small and stays resident at the depth it once reached
// until the fiber ends. Work that recurses deeply but never blocks (a parser,
// a hash of a big tree, the DUMB protocol's BURN) can instead run on a stack
// that belongs to the worker thread: 8 MiB reserved per worker, committed as
// touched, shared by every fiber that worker runs. The fiber's own stack then
// stays shallow, so ten thousand parked fibers that each once ran such work
// cost a page each instead of the depth they reached.
//
// Rules: f must not block (no gort::sleep_for, Mutex::lock, channel
// operation, socket I/O — anything that parks): the fiber is pinned to this
// worker's stack for the call, and parking from it is a fatal error. f's
// result or exception is returned to the caller. Outside a fiber, f simply
// runs on the calling thread's stack.
#pragma once

#include <exception>
#include <optional>
#include <type_traits>
#include <utility>

namespace gort {

namespace detail {
// Runs fn(arg) on the current worker's stack (or directly outside fibers).
void run_on_worker_stack(void (*fn)(void*), void* arg);
bool on_worker_stack_now();  // is the caller running on a worker stack?
}  // namespace detail

template <class F>
std::invoke_result_t<F&> on_worker_stack(F&& f) {
  using R = std::invoke_result_t<F&>;
  struct Call {
    F& fn;
    std::exception_ptr error;
    std::optional<std::conditional_t<std::is_void_v<R>, int, R>> result;
    static void run(void* p) {
      auto* c = static_cast<Call*>(p);
      try {
        if constexpr (std::is_void_v<R>) {
          c->fn();
        } else {
          c->result.emplace(c->fn());
        }
      } catch (...) {
        c->error = std::current_exception();
      }
    }
  } call{f, nullptr, std::nullopt};
  detail::run_on_worker_stack(&Call::run, &call);
  if (call.error) std::rethrow_exception(call.error);
  if constexpr (!std::is_void_v<R>) return std::move(*call.result);
}

}  // namespace gort
