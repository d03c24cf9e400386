// select.h: gort::select, Go's select statement, and gort::after.
//
//   int chosen = gort::select(
//       gort::on_recv(jobs, [](std::optional<Job> j) { ... }),   // nullopt: jobs closed
//       gort::on_send(results, std::move(r), [] { ... }),
//       gort::on_recv(gort::after(1s), [](auto) { timed_out = true; }),
//       gort::on_default([] { ... }));                          // optional: never block
//
// Waits until one case can proceed, completes exactly that one, runs its
// handler and returns its position among the arguments (0-based; the
// default's position if it ran). When several cases are ready, one is chosen
// uniformly at random. A receive case is ready when a value is there or the
// channel is closed (the handler then gets std::nullopt). A send case on a
// closed channel makes select throw ChanClosed, like a plain send. Handlers
// are optional; a receive handler may take std::optional<T> or nothing.
//
// Channels may repeat across cases and be of different element types; a
// send case's value is moved into the channel only if that case is chosen.
// A case on a nil channel (a null shared_ptr, e.g. a Context that can never
// be done) is never ready: Go's idiom for switching a case off. Without
// cases (or with only nil ones) and without a default, select blocks forever
// (Go's select{}); the deadlock report counts such a fiber as asleep.
// The algorithm is in runtime/src/chan.cpp.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <type_traits>
#include <utility>

#include <gort/chan.h>
#include <gort/time.h>

namespace gort {

namespace detail {

struct NoHandler {
  void operator()() const {}
};

// GCC 12 cannot see that select_cases (through a void*) engaged the slot
// and warns, inside the handler, that the optional's value may be
// uninitialised. It is a false positive; the pragma covers the call.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif
template <class T, class F>
struct RecvCase {
  Chan<T>* chan;
  F handler;
  std::optional<T> slot;  // the received value lands here
  static constexpr bool kIsSend = false;
  void* slot_ptr() { return &slot; }
  void fire() {
    if constexpr (std::is_invocable_v<F&, std::optional<T>>) {
      handler(std::move(slot));
    } else {
      static_assert(std::is_invocable_v<F&>, "gort::on_recv: handler must take std::optional<T> or nothing");
      handler();
    }
  }
};

#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic pop
#endif

template <class T, class F>
struct SendCase {
  Chan<T>* chan;
  T value;  // moved into the channel if this case is chosen
  F handler;
  static constexpr bool kIsSend = true;
  void* slot_ptr() { return &value; }
  void fire() { handler(); }
};

template <class F>
struct DefaultCase {
  F handler;
  void fire() { handler(); }
};

template <class C>
inline constexpr bool is_default_case = false;
template <class F>
inline constexpr bool is_default_case<DefaultCase<F>> = true;

// Scratch for one select of N channel cases, on the caller's stack. The
// waiters stay raw until the select parks (trivially destructible).
template <int N>
struct SelectFrame {
  SelectCase cases[N];
  int arg_index[N];  // position of cases[i] among select's arguments
  uint16_t order[2 * N];
  alignas(ChanWaiter) unsigned char waiters[N * sizeof(ChanWaiter)];
};
template <>
struct SelectFrame<0> {
  SelectCase* cases = nullptr;
  int* arg_index = nullptr;
  uint16_t* order = nullptr;
  ChanWaiter* waiters = nullptr;
};

// Adds one case to the frame; a nil channel's case is left out, so it can
// never be chosen.
template <int N, class C>
void add_case(SelectFrame<N>& frame, int& n, int& default_arg, int arg, C& c) {
  if constexpr (is_default_case<C>) {
    default_arg = arg;
  } else if constexpr (N > 0) {
    if (c.chan == nullptr) return;
    frame.cases[n] = SelectCase{&c.chan->core(), C::kIsSend, c.slot_ptr()};
    frame.arg_index[n] = arg;
    ++n;
  }
}

}  // namespace detail

template <class T, class F = detail::NoHandler>
detail::RecvCase<T, F> on_recv(Chan<T>& ch, F handler = {}) {
  return {&ch, std::move(handler), std::nullopt};
}
template <class T, class F = detail::NoHandler>
detail::RecvCase<T, F> on_recv(const std::shared_ptr<Chan<T>>& ch, F handler = {}) {
  return {ch.get(), std::move(handler), std::nullopt};
}

template <class T, class U, class F = detail::NoHandler>
requires std::is_constructible_v<T, U&&> detail::SendCase<T, F> on_send(Chan<T>& ch, U&& value, F handler = {}) {
  return {&ch, T(std::forward<U>(value)), std::move(handler)};
}
template <class T, class U, class F = detail::NoHandler>
requires std::is_constructible_v<T, U&&> detail::SendCase<T, F> on_send(const std::shared_ptr<Chan<T>>& ch, U&& value,
                                                                        F handler = {}) {
  return {ch.get(), T(std::forward<U>(value)), std::move(handler)};
}

template <class F = detail::NoHandler>
detail::DefaultCase<F> on_default(F handler = {}) {
  return {std::move(handler)};
}

template <class... Cases>
int select(Cases&&... cases) {
  constexpr int kDefaults = (0 + ... + int(detail::is_default_case<std::remove_cvref_t<Cases>>));
  static_assert(kDefaults <= 1, "gort::select: at most one on_default");
  constexpr int kN = int(sizeof...(Cases)) - kDefaults;
  static_assert(kN <= 4096, "gort::select: too many cases");

  detail::SelectFrame<kN> frame;
  int n = 0, default_arg = -1, arg = 0;
  (detail::add_case<kN, std::remove_cvref_t<Cases>>(frame, n, default_arg, arg++, cases), ...);
  int chosen = detail::select_cases(frame.cases, n, kDefaults == 0, frame.order,
                                    reinterpret_cast<detail::ChanWaiter*>(frame.waiters));
  int chosen_arg = chosen < 0 ? default_arg : frame.arg_index[chosen];
  arg = 0;
  ((arg++ == chosen_arg ? cases.fire() : void()), ...);
  return chosen_arg;
}

namespace detail {
std::shared_ptr<Chan<Clock::time_point>> after_ns(int64_t ns);
}  // namespace detail

// Go's time.After: a channel (capacity 1) that receives the time once, d
// from now. Runs on the runtime's timers: from a fiber on its worker's
// heap, from another thread on worker 0's. Throws std::logic_error when no
// runtime is running. A timer that has not fired holds its channel until it
// fires or the runtime stops.
template <class Rep, class Period>
std::shared_ptr<Chan<Clock::time_point>> after(std::chrono::duration<Rep, Period> d) {
  return detail::after_ns(std::chrono::duration_cast<std::chrono::nanoseconds>(d).count());
}

}  // namespace gort
