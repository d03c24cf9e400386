// timer.h: gort::Timer, gort::Ticker and gort::after_func, Go's time.Timer,
// time.Ticker and time.AfterFunc, on the runtime's timer heaps.
//
//   gort::Timer t(500ms);                       // t.chan() receives the time once
//   gort::select(gort::on_recv(t.chan()), gort::on_recv(work));
//   t.stop();                                    // no value arrives after stop()
//
//   gort::Ticker tick(100ms);                    // every 100 ms, on a fixed grid
//   for (int i = 0; i < 10; ++i) tick.chan()->recv();
//
//   gort::after_func(1s, [] { log("late"); });   // f runs in a fiber of its own
//
// Semantics are Go 1.23's: stop() and reset() return whether the timer was
// still pending, and after either returns no value sent for the old timing
// is left on the channel (it is discarded), so a stopped timer never
// delivers. A Ticker's channel has room for one tick: a reader that falls
// behind finds one tick waiting and the ones it missed dropped; ticks stay
// on the grid start + k x period (no drift). A Timer made by after_func has
// no channel (chan() is null, a nil channel).
//
// Lifetime: dropping a channel Timer or a Ticker stops it (nobody can
// receive its values any more); dropping the Timer that after_func returned
// leaves f scheduled, as in Go. Every constructor throws std::logic_error
// when no gort runtime is running; a Ticker's period must be positive
// (std::invalid_argument otherwise). Timers still pending when gort::run
// returns are freed without firing.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <utility>

#include <gort/chan.h>
#include <gort/runtime.h>
#include <gort/time.h>

namespace gort {

namespace detail {

class TimerCore;  // runtime/src/timer.cpp

// The handle operations behind Timer and Ticker (timer.cpp). timer_start
// makes a core armed for delay_ns from now, held by its creator (one
// reference, dropped by timer_release). With an empty fn it sends the time
// on its channel (every period_ns if that is positive, else once);
// otherwise it calls fn on the worker that fires it (fn must not block).
TimerCore* timer_start(int64_t delay_ns, int64_t period_ns, std::function<void()> fn);
bool timer_reset(TimerCore* t, int64_t delay_ns, int64_t period_ns);  // re-arms: was it pending?
bool timer_stop(TimerCore* t);                                        // was it pending?
void timer_release(TimerCore* t);
const std::shared_ptr<Chan<Clock::time_point>>& timer_chan(TimerCore* t);

template <class Rep, class Period>
int64_t to_ns(std::chrono::duration<Rep, Period> d) {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(d).count();
}

}  // namespace detail

class Timer {
 public:
  // Go's time.NewTimer(d): the channel receives the time once, d from now.
  template <class Rep, class Period>
  explicit Timer(std::chrono::duration<Rep, Period> d) : core_(detail::timer_start(detail::to_ns(d), 0, {})) {}
  Timer(Timer&& other) noexcept : core_(std::exchange(other.core_, nullptr)), owns_(other.owns_) {}
  Timer& operator=(Timer&& other) noexcept {
    if (this != &other) {
      drop();
      core_ = std::exchange(other.core_, nullptr);
      owns_ = other.owns_;
    }
    return *this;
  }
  Timer(const Timer&) = delete;
  Timer& operator=(const Timer&) = delete;
  ~Timer() { drop(); }

  // Go's t.C; null (a nil channel) for a Timer made by after_func.
  const std::shared_ptr<Chan<Clock::time_point>>& chan() const { return detail::timer_chan(core()); }
  // Cancels the timer: true if it was pending (it will not fire now).
  bool stop() { return detail::timer_stop(core()); }
  // Re-arms it for d from now: true if it was still pending.
  template <class Rep, class Period>
  bool reset(std::chrono::duration<Rep, Period> d) {
    return detail::timer_reset(core(), detail::to_ns(d), 0);
  }

 private:
  template <class Rep, class Period, class F>
  friend Timer after_func(std::chrono::duration<Rep, Period> d, F f);
  struct FuncTag {};
  Timer(FuncTag, detail::TimerCore* core) : core_(core), owns_(false) {}
  detail::TimerCore* core() const;  // throws std::logic_error on a moved-from Timer
  void drop() noexcept;

  detail::TimerCore* core_;
  bool owns_ = true;  // dropping the handle stops the timer (channel timers)
};

// Go's time.AfterFunc: f() runs in a new fiber d from now, unless stop()
// comes first. f is moved into the timer and copied into each fiber it
// starts (reset() can make it run again), so it must be copyable.
template <class Rep, class Period, class F>
Timer after_func(std::chrono::duration<Rep, Period> d, F f) {
  return Timer(Timer::FuncTag{}, detail::timer_start(detail::to_ns(d), 0, [f = std::move(f)] { gort::spawn(f); }));
}

class Ticker {
 public:
  // Go's time.NewTicker(period): the channel receives the time every period.
  template <class Rep, class Period>
  explicit Ticker(std::chrono::duration<Rep, Period> period) : core_(make(detail::to_ns(period))) {}
  Ticker(Ticker&& other) noexcept : core_(std::exchange(other.core_, nullptr)) {}
  Ticker& operator=(Ticker&& other) noexcept {
    if (this != &other) {
      drop();
      core_ = std::exchange(other.core_, nullptr);
    }
    return *this;
  }
  Ticker(const Ticker&) = delete;
  Ticker& operator=(const Ticker&) = delete;
  ~Ticker() { drop(); }

  const std::shared_ptr<Chan<Clock::time_point>>& chan() const { return detail::timer_chan(core()); }
  void stop() { detail::timer_stop(core()); }
  // Restarts the ticks with a new period, the first one period from now.
  template <class Rep, class Period>
  void reset(std::chrono::duration<Rep, Period> period) {
    int64_t ns = checked_period(detail::to_ns(period));
    detail::timer_reset(core(), ns, ns);
  }

 private:
  static detail::TimerCore* make(int64_t period_ns);
  static int64_t checked_period(int64_t period_ns);  // throws std::invalid_argument if <= 0
  detail::TimerCore* core() const;
  void drop() noexcept;

  detail::TimerCore* core_;
};

}  // namespace gort
