// context.h: gort::Context, Go's context.Context: cancellation, deadlines and
// request-scoped values, passed down a tree of fibers.
//
//   auto [ctx, cancel] = gort::with_timeout(gort::background(), 2s);
//   go_spawn([ctx] { worker(ctx); });
//   ...
//   cancel();                                        // idempotent; children too
//
//   void worker(const gort::Context& ctx) {
//     for (;;) {
//       int chosen = gort::select(gort::on_recv(ctx.done()), gort::on_recv(jobs));
//       if (chosen == 0) return;                     // ctx.err() says why
//       ...
//       if (gort::sleep_for(ctx, 10ms) != gort::ContextError::kNone) return;
//     }
//   }
//
// Semantics are Go's. A Context is a cheap, copyable handle, immutable and
// safe to share between fibers and threads. done() is a channel that is
// closed when the context is canceled (by its cancel function, its
// deadline, or its parent's cancellation), so it works as a select case;
// for a context that can never be canceled (background(), and contexts
// derived from it only by values) it is null, a nil channel: never ready,
// and such contexts cost nothing to check. err() is kNone until done, then
// kCanceled or kDeadlineExceeded for good. Cancelling is idempotent and
// reaches every descendant; a child never outlives its parent's deadline.
//
// Call the cancel function when the work is finished (Go's defer cancel()):
// it frees the context's timer and its place in the parent at once. A
// context that is simply dropped (every Context and CancelFunc copy gone)
// frees both too.
//
// Blocking calls that take a Context: sleep_for/sleep_until below, channel
// operations through select with on_recv(ctx.done()), and gort::net's
// dial_tcp, accept, read and write (a cancellation makes them return
// Errc::kCanceled). Calls without a Context pay nothing for the feature.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <utility>
#include <variant>

#include <gort/chan.h>
#include <gort/time.h>

namespace gort {

enum class ContextError : uint8_t {
  kNone,              // not done
  kCanceled,          // its cancel function (or a parent's) was called
  kDeadlineExceeded,  // its deadline (or a parent's) passed
};
// Go's wording: "context canceled", "context deadline exceeded"; "" for kNone.
const char* to_string(ContextError e);

// A key for with_value: compared by address, so declare it once (static or
// global) per kind of value, as Go's unexported key types.
template <class T>
struct ContextKey {
  const char* name;  // for diagnostics
};

class Context;

namespace detail {
struct ContextNode;  // runtime/src/cancellation.cpp
struct CancelHook;
const void* context_value(const ContextNode* node, const void* key);
bool add_cancel_hook(const gort::Context& ctx, CancelHook* hook);
}  // namespace detail

class Context {
 public:
  Context() = default;  // background()

  // Closed when the context is canceled; null (never ready) if it cannot be.
  const std::shared_ptr<Chan<std::monostate>>& done() const;
  ContextError err() const;
  // When it will be canceled by a deadline, if ever.
  std::optional<Clock::time_point> deadline() const;
  // The value stored under `key` by this context or an ancestor, or null.
  template <class T>
  const T* value(const ContextKey<T>& key) const {
    return static_cast<const T*>(detail::context_value(node_.get(), &key));
  }

 private:
  friend struct detail::ContextNode;
  friend bool detail::add_cancel_hook(const gort::Context& ctx, detail::CancelHook* hook);
  explicit Context(std::shared_ptr<detail::ContextNode> node) : node_(std::move(node)) {}
  std::shared_ptr<detail::ContextNode> node_;  // null: background
};

// Cancels its context with kCanceled (and every descendant); idempotent,
// callable from any fiber or thread. Copies cancel the same context.
class CancelFunc {
 public:
  CancelFunc() = default;
  void operator()() const;

 private:
  friend struct detail::ContextNode;
  explicit CancelFunc(std::shared_ptr<detail::ContextNode> node) : node_(std::move(node)) {}
  std::shared_ptr<detail::ContextNode> node_;
};

// Go's context.Background() (and TODO()): never canceled, no deadline, no values.
inline Context background() { return Context(); }

std::pair<Context, CancelFunc> with_cancel(const Context& parent);
// Canceled with kDeadlineExceeded at t (or earlier, with the parent). Needs
// a running runtime for its timer unless t is already past or later than
// the parent's deadline; else throws std::logic_error.
std::pair<Context, CancelFunc> with_deadline(const Context& parent, Clock::time_point t);
template <class Rep, class Period>
std::pair<Context, CancelFunc> with_timeout(const Context& parent, std::chrono::duration<Rep, Period> d) {
  return with_deadline(parent, Clock::now() + std::chrono::duration_cast<Clock::duration>(d));
}

namespace detail {
gort::Context context_with_value(const gort::Context& parent, const void* key, std::shared_ptr<const void> value);
}  // namespace detail

template <class T, class U>
Context with_value(const Context& parent, const ContextKey<T>& key, U&& value) {
  return detail::context_with_value(parent, &key, std::make_shared<const T>(std::forward<U>(value)));
}

namespace detail {
// (runtime/src/context.h's detail::Context is a fiber's machine context,
// hence the qualified names in this namespace.)
ContextError sleep_until_ns(const gort::Context& ctx, int64_t deadline_ns);
}  // namespace detail

// Sleeps for d, or until ctx is done: returns ContextError::kNone after the
// full sleep, else ctx.err(). With a context that cannot be canceled it is
// plain sleep_for.
template <class Rep, class Period>
ContextError sleep_for(const Context& ctx, std::chrono::duration<Rep, Period> d) {
  auto ns = std::chrono::duration_cast<std::chrono::nanoseconds>(d).count();
  return detail::sleep_until_ns(ctx, detail::to_monotonic_ns(Clock::now()) + (ns > 0 ? ns : 0));
}
template <class Duration>
ContextError sleep_until(const Context& ctx, std::chrono::time_point<Clock, Duration> t) {
  return detail::sleep_until_ns(ctx, detail::to_monotonic_ns(std::chrono::time_point_cast<Clock::duration>(t)));
}

namespace detail {

// A callback run once when a context is canceled, for blocking calls that
// must be interrupted from outside (gort::net sets an expired deadline on
// the descriptor). Lives on the blocking call's stack:
//   add_cancel_hook(ctx, &hook)   false: ctx is already done (hook not added)
//   ... the blocking call ...
//   remove_cancel_hook(&hook)     true: removed before it ran; false: it ran,
//                                 and has returned by now
// run(arg) runs on the canceling fiber or thread, with no lock held, and
// must not block.
struct CancelHook {
  void (*run)(void* arg) = nullptr;
  void* arg = nullptr;
  ContextNode* owner = nullptr;  // the node it is registered on (null: not added)
  CancelHook* prev = nullptr;    // links on owner's hook list (under owner's lock)
  CancelHook* next = nullptr;
  bool queued = false;                // on the list (under owner's lock)
  std::atomic<uint32_t> finished{0};  // 1 once run has returned (after a cancel took it)
};
bool add_cancel_hook(const gort::Context& ctx, CancelHook* hook);
bool remove_cancel_hook(CancelHook* hook);

}  // namespace detail

}  // namespace gort
