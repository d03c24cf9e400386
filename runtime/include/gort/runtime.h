// runtime.h: starting the runtime, spawning fibers, yielding.
//
//   int main() {
//     return gort::run([] {                // the main fiber
//       go_spawn([](int x) { ... }, 42);   // like `go f(42)`
//     });
//   }
//
// gort::run boots one worker per CPU in the affinity mask (or GORT_PROCS, or
// Config::workers) and returns when the main fiber returns; fibers still
// running then are abandoned, as in Go. Fibers migrate between workers: do not
// keep the address of a thread_local across a call that may suspend (see
// docs/ARCHITECTURE.md, "Thread-locals").
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <new>
#include <tuple>
#include <type_traits>
#include <utility>

namespace gort {

struct Config {
  int workers = 0;              // 0: CPUs in the affinity mask, or GORT_PROCS
  std::size_t stack_size = 0;   // default fiber stack reservation; 0: GORT_STACK_SIZE or 256 KiB
  bool detect_deadlock = true;  // "all fibers are asleep - deadlock!" instead of hanging
};

struct SpawnOptions {
  std::size_t stack_size = 0;  // this fiber's stack reservation; 0: the runtime's default
  const char* name = nullptr;  // shown in fatal errors and the fiber dump (static storage)
};

namespace detail {
struct Fiber;
// Reserves a fiber and room for its task on the new stack; the caller
// constructs the task there and commits (or aborts if construction threw).
Fiber* spawn_prepare(const SpawnOptions& opts, std::size_t task_size, std::size_t task_align, void** task_storage);
void spawn_commit(Fiber* f, void (*run)(void*), void (*drop)(void*));
void spawn_abort(Fiber* f);
int run_main(const Config& config, void (*body)(void*), void* arg);

template <class F, class... Args>
struct Task {
  std::decay_t<F> fn;
  std::tuple<std::decay_t<Args>...> args;
  static void run(void* p) {
    auto* t = static_cast<Task*>(p);
    std::apply([&](auto&... a) { std::invoke(std::move(t->fn), std::move(a)...); }, t->args);
  }
  static void drop(void* p) { static_cast<Task*>(p)->~Task(); }
};
}  // namespace detail

// Starts fn(args...) on a new fiber. Arguments are moved (or copied) into the
// fiber, like `go f(x)`. Callable from fibers and from other threads while
// the runtime runs; throws std::logic_error when no runtime is running and
// std::bad_alloc when no fiber record (or, for arguments too large for the
// record, no stack) can be reserved. The stack of a fiber whose arguments
// fit its record is bound when it first runs; if the kernel refuses it
// then, the runtime stops with a fatal error naming the fiber.
template <class F, class... Args>
requires std::is_invocable_v<std::decay_t<F>, std::decay_t<Args>...>
void spawn(const SpawnOptions& opts, F&& fn, Args&&... args) {
  using T = detail::Task<F, Args...>;
  void* storage = nullptr;
  detail::Fiber* f = detail::spawn_prepare(opts, sizeof(T), alignof(T), &storage);
  try {
    ::new (storage) T{std::forward<F>(fn), {std::forward<Args>(args)...}};
  } catch (...) {
    detail::spawn_abort(f);
    throw;
  }
  detail::spawn_commit(f, &T::run, &T::drop);
}

template <class F, class... Args>
requires std::is_invocable_v<std::decay_t<F>, std::decay_t<Args>...>
void spawn(F&& fn, Args&&... args) { spawn(SpawnOptions{}, std::forward<F>(fn), std::forward<Args>(args)...); }

// Boots the runtime, runs main_fn as the main fiber, returns its result (0
// for void) once it returns. Throws std::logic_error if a runtime is already
// running in this process.
template <class F>
int run(const Config& config, F&& main_fn) {
  struct Body {
    F& fn;
    int result = 0;
    static void call(void* p) {
      auto* b = static_cast<Body*>(p);
      if constexpr (std::is_void_v<std::invoke_result_t<F&>>) {
        std::invoke(b->fn);
      } else {
        b->result = int(std::invoke(b->fn));
      }
    }
  } body{main_fn};
  int rc = detail::run_main(config, &Body::call, &body);
  return rc != 0 ? rc : body.result;
}
template <class F>
int run(F&& main_fn) {
  return run(Config{}, std::forward<F>(main_fn));
}

// Lets other runnable fibers run; returns when this one is scheduled again.
// Outside a fiber it yields the thread.
void yield();

bool in_fiber();      // is the caller a gort fiber?
uint64_t fiber_id();  // the running fiber's id, 0 outside fibers
int worker_count();   // workers of the running runtime, 0 if none
// The workers gort::run starts when Config::workers is 0: GORT_PROCS if
// set, else the CPUs in the affinity mask (Go's GOMAXPROCS default).
int default_workers();

// Introspection, for tests and diagnostics.
struct Stats {
  int64_t live_fibers = 0;      // spawned, not yet returned
  int64_t stacks_in_use = 0;    // stacks held by live fibers
  std::size_t stack_slabs = 0;  // stack slabs mapped
  bool guard_install = false;   // guards are MADV_GUARD_INSTALL (else mprotect)
  uint64_t preemptions = 0;     // yields forced at a runtime call because a time slice ran out
  uint64_t stuck_episodes = 0;  // times a fiber held its worker without a runtime call (monitor)
  int spare_workers = 0;        // spares running fibers now, standing in for stuck workers
  int spare_threads = 0;        // spare threads alive (running or pooled)
};
Stats stats();

}  // namespace gort

// The Go-flavoured spelling: go_spawn(f, args...).
template <class F, class... Args>
requires std::is_invocable_v<std::decay_t<F>, std::decay_t<Args>...>
void go_spawn(F&& fn, Args&&... args) { gort::spawn(std::forward<F>(fn), std::forward<Args>(args)...); }
