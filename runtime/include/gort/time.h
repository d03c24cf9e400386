// time.h: sleeping. A sleeping fiber holds no thread: it parks on its
// worker's timer heap. Outside fibers these block the calling thread.
#pragma once

#include <chrono>

namespace gort {

using Clock = std::chrono::steady_clock;

namespace detail {
void sleep_until_ns(int64_t deadline_ns);  // CLOCK_MONOTONIC ns
int64_t to_monotonic_ns(Clock::time_point t);
}  // namespace detail

template <class Rep, class Period>
void sleep_for(std::chrono::duration<Rep, Period> d) {
  auto ns = std::chrono::duration_cast<std::chrono::nanoseconds>(d).count();
  detail::sleep_until_ns(detail::to_monotonic_ns(Clock::now()) + (ns > 0 ? ns : 0));
}

template <class Duration>
void sleep_until(std::chrono::time_point<Clock, Duration> t) {
  detail::sleep_until_ns(detail::to_monotonic_ns(std::chrono::time_point_cast<Clock::duration>(t)));
}

}  // namespace gort
