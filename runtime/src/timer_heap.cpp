// timer_heap.cpp: see timer_heap.h.
#include "timer_heap.h"

#include <mutex>
#include <utility>

namespace gort::detail {

void TimerHeap::publish_next() {
  // release: pairs with the acquire in next_when(); a reader that sees a
  // deadline then takes lock_ before touching the node anyway.
  next_when_.store(heap_.empty() ? kNever : heap_[0].when, std::memory_order_release);
}

void TimerHeap::place(uint32_t i, Entry e) {
  heap_[i] = e;
  e.node->index = i;
}

void TimerHeap::sift_up(uint32_t i) {
  Entry e = heap_[i];
  while (i > 0) {
    uint32_t parent = (i - 1) / kArity;
    if (heap_[parent].when <= e.when) break;
    place(i, heap_[parent]);
    i = parent;
  }
  place(i, e);
}

void TimerHeap::sift_down(uint32_t i) {
  uint32_t n = uint32_t(heap_.size());
  Entry e = heap_[i];
  for (;;) {
    uint32_t first = kArity * i + 1;
    if (first >= n) break;
    uint32_t least = first;
    for (uint32_t c = first + 1; c < first + kArity && c < n; ++c)
      if (heap_[c].when < heap_[least].when) least = c;
    if (e.when <= heap_[least].when) break;
    place(i, heap_[least]);
    i = least;
  }
  place(i, e);
}

void TimerHeap::erase_at(uint32_t i) {
  Entry last = heap_.back();
  heap_.pop_back();
  if (i < heap_.size()) {
    heap_[i] = last;
    // It moves one way only: up if it is earlier than i's parent, else down.
    if (i > 0 && last.when < heap_[(i - 1) / kArity].when)
      sift_up(i);
    else
      sift_down(i);
  }
}

void TimerHeap::shrink() {
  SpinGuard guard(lock_);
  if (heap_.capacity() > 4096 && heap_.size() * 8 < heap_.capacity()) heap_.shrink_to_fit();
}

bool TimerHeap::add(TimerNode* node) {
  SpinGuard guard(lock_);
  GORT_CHECK(node->owner.load(std::memory_order_relaxed) == nullptr);
  heap_.push_back(Entry{node->when, node});
  sift_up(uint32_t(heap_.size() - 1));
  // release: remove() reads owner (acquire) before taking our lock.
  node->owner.store(this, std::memory_order_release);
  publish_next();
  return heap_[0].node == node;
}

bool TimerHeap::remove(TimerNode* node) {
  for (;;) {
    TimerHeap* heap = node->owner.load(std::memory_order_acquire);
    if (heap == nullptr) return false;
    SpinGuard guard(heap->lock_);
    // Re-check under the lock: the node may have fired meanwhile.
    if (node->owner.load(std::memory_order_relaxed) != heap) continue;
    heap->erase_at(node->index);
    node->owner.store(nullptr, std::memory_order_relaxed);
    heap->publish_next();
    return true;
  }
}

int TimerHeap::run_expired(int64_t now, int max) {
  int fired = 0;
  while (fired < max) {
    TimerNode* node;
    void (*fire)(TimerNode*);
    {
      SpinGuard guard(lock_);
      if (heap_.empty() || heap_[0].when > now) return fired;
      node = heap_[0].node;
      // Read while the node is surely intact: once popped, its creator may
      // reuse it, and a deadline timer's page may be given back (netpoll.h).
      fire = node->fire;
      erase_at(0);
      // release: a remove() that reads null (acquire) without taking our
      // lock then owns the node's fields; this orders our read of `when`
      // above before its rewrite (TSan: poll_set_deadline racing a firing).
      node->owner.store(nullptr, std::memory_order_release);
      publish_next();
    }
    fire(node);
    ++fired;
  }
  return fired;
}

std::size_t TimerHeap::pending() {
  SpinGuard guard(lock_);
  return heap_.size();
}

}  // namespace gort::detail
