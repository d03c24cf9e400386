// dumb/timer_heap.h -- a min-heap of deadlines for event loops (WAIT timers).
//
// Entries are never removed early: a loop checks, when an entry fires, that
// the key still names the same thing (a connection serial, a coroutine that
// is still asleep).  Push O(log n), pop O(log n); the loop's poll timeout is
// the time until next_deadline(), rounded up so a timer never fires early.

#pragma once

#include <chrono>
#include <optional>
#include <queue>
#include <vector>

namespace dumb {

using Clock = std::chrono::steady_clock;

template <class Key>
class TimerHeap {
 public:
  void push(Clock::time_point deadline, Key key) { heap_.push(Entry{deadline, key}); }

  std::optional<Clock::time_point> next_deadline() const {
    if (heap_.empty()) return std::nullopt;
    return heap_.top().deadline;
  }

  // Removes and returns the earliest entry if it is due at `now`.
  std::optional<Key> pop_due(Clock::time_point now) {
    if (heap_.empty() || heap_.top().deadline > now) return std::nullopt;
    Key key = heap_.top().key;
    heap_.pop();
    return key;
  }

  // Milliseconds until the next deadline, rounded up, for epoll_wait(); -1
  // (block) if there is none, `cap` at most.
  int timeout_ms(Clock::time_point now, int cap = -1) const {
    auto next = next_deadline();
    if (!next) return cap;
    if (*next <= now) return 0;
    auto ms = std::chrono::ceil<std::chrono::milliseconds>(*next - now).count();
    if (cap >= 0 && ms > cap) return cap;
    return static_cast<int>(ms);
  }

  bool empty() const { return heap_.empty(); }

 private:
  struct Entry {
    Clock::time_point deadline;
    Key key;
    bool operator>(const Entry& other) const { return deadline > other.deadline; }
  };
  std::priority_queue<Entry, std::vector<Entry>, std::greater<Entry>> heap_;
};

}  // namespace dumb
