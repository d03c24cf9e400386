// blocking.h: gort::blocking(f), for calls that block the kernel thread
// (a blocking syscall, a C library without a nonblocking API, heavy CPU work
// that should not hold a worker).
//
//   std::string text = gort::blocking([&] { return read_whole_file(path); });
//
// From a fiber: f runs on a helper thread, the fiber parks until f returns,
// and its worker keeps running other fibers meanwhile. f's result is
// returned, or its exception rethrown, in the calling fiber. Outside a fiber
// f simply runs inline.
//
// The helper pool is bounded: at most blocking_threads() helpers, by default
// max(4, 2 x workers), started lazily as calls arrive. When every helper is
// busy, further calls queue in FIFO order and run as helpers free up;
// nothing is dropped. gort::run waits for calls in flight when it returns
// (f must eventually return) and drops calls still queued, whose fibers are
// abandoned with the rest. f must not call gort APIs that park (it runs on
// a plain thread, where they would block that helper); readying fibers
// from it (channel sends, Mutex unlock) is fine.
#pragma once

#include <exception>
#include <functional>
#include <optional>
#include <type_traits>
#include <utility>

#include <gort/runtime.h>

namespace gort {

namespace detail {

// Runs job(arg) on a helper thread and parks the calling fiber until it has
// returned. job must not throw.
void run_blocking(void (*job)(void*), void* arg);

template <class R>
struct BlockingResult {
  std::optional<R> value;
  template <class F>
  void compute(F& f) {
    value.emplace(std::invoke(f));
  }
  R take() { return std::move(*value); }
};
template <class R>
struct BlockingResult<R&> {
  R* value = nullptr;
  template <class F>
  void compute(F& f) {
    value = &std::invoke(f);
  }
  R& take() { return *value; }
};
template <>
struct BlockingResult<void> {
  template <class F>
  void compute(F& f) {
    std::invoke(f);
  }
  void take() {}
};

}  // namespace detail

// Sets the helper bound (n >= 1), or restores the default with 0. A smaller
// bound does not stop helpers already started; they last until gort::run
// returns.
void set_blocking_threads(int n);
int blocking_threads();  // the bound for the running runtime (or the next one)

template <class F>
requires std::is_invocable_v<F&> std::invoke_result_t<F&> blocking(F&& f) {
  using R = std::invoke_result_t<F&>;
  static_assert(!std::is_rvalue_reference_v<R>, "gort::blocking: f must not return an rvalue reference");
  if (!in_fiber()) return std::invoke(f);
  struct Call {
    F& fn;
    detail::BlockingResult<R> result;
    std::exception_ptr error;
    static void run(void* p) {
      auto* c = static_cast<Call*>(p);
      try {
        c->result.compute(c->fn);
      } catch (...) {
        c->error = std::current_exception();
      }
    }
  } call{f, {}, nullptr};
  detail::run_blocking(&Call::run, &call);
  if (call.error) std::rethrow_exception(call.error);
  return call.result.take();
}

}  // namespace gort
