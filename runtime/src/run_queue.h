// run_queue.h: a worker's bounded run queue, Go's runq design.
//
// A ring of kCapacity fiber pointers with `head` (next to pop or steal) and
// `tail` (next free slot), plus a one-entry `next` slot that is run before the
// ring: a fiber made ready by the running fiber (a woken waiter, a new spawn)
// runs next, keeping producer/consumer pairs on one worker and warm in cache.
//
// The two sides are two handle types, as Tokio's queue::Local and Steal:
// RunQueue::Owner (one thread, the worker that owns the queue: push, pop,
// set_next, and stealing into its own ring) and RunQueue::Thief (any thread:
// the size, and being stolen from). The owner alone writes
// `tail`; head moves by CAS from both sides. A thief copies the entries it
// intends to take into its own ring first and then claims them with one CAS on
// head; if the CAS fails someone else took them and it retries. The copies it
// made are beyond its own tail, so they are invisible until it publishes them.
//
// Memory orders (pairs):
//  * push stores the slot (relaxed), then tail (release)  ->  a thief's
//    tail load (acquire) sees the slot contents.
//  * pop/steal CAS head (release on success)  ->  push's head load (acquire):
//    the owner may not overwrite a slot until the thief that copied it has
//    claimed it.
//  * set_next into an empty next slot is a plain store (release), not an
//    exchange: only the owner ever fills the slot, so an empty slot cannot
//    change under it  ->  the acq_rel exchange that takes the fiber out
//    (a thief's, or the owner's pop) sees what the readier wrote before.
// Slots are atomics accessed relaxed so that a thief's speculative read of a
// slot the owner is rewriting is not a data race (the CAS then fails).
//
// When the ring is full, push moves half of it plus the new fiber to the
// injector (the overflow callback), like Go's runqputslow.
#pragma once

#include <atomic>
#include <cstdint>
#include <utility>

#include "fiber.h"

namespace gort::detail {

class RunQueue {
 public:
  static constexpr uint32_t kCapacity = 256;
  static constexpr uint32_t kMaxNextStreak = 16;

  class Owner;
  class Thief;
  Owner owner();  // for the owning worker only
  Thief thief();  // for anyone

 private:
  // ---- owner side (reached through Owner) ----

  // Appends f; when full, hands half the ring and f to overflow(batch, n).
  // The common case (room in the ring) is inline; the overflow is not.
  template <class Overflow>
  __attribute__((always_inline)) void push(Fiber* f, Overflow&& overflow) {
    uint32_t h;
    if (__builtin_expect(try_append(f, h), 1)) return;
    push_slow(f, h, overflow);
  }

  // Puts f in the next slot; returns the fiber it displaced (to be pushed), or null.
  // Only the owner puts a fiber into the slot; thieves only take one out.
  // So a slot we see empty stays empty until we fill it, and a plain store
  // does: release, pairing with the acq_rel exchange of a thief (or of our
  // own pop) that takes f, as the exchange's release half did. A full slot
  // can be emptied by a thief at any moment: only an exchange tells us
  // whether we displaced its fiber.
  Fiber* set_next(Fiber* f) {
    if (next_.load(std::memory_order_relaxed) == nullptr) {
      next_.store(f, std::memory_order_release);
      return nullptr;
    }
    return next_.exchange(f, std::memory_order_acq_rel);
  }

  // Next fiber to run: the next slot first, then the ring's head. After
  // kMaxNextStreak fibers in a row from the next slot the ring goes first
  // once, so two fibers readying each other cannot starve the ring (Go
  // bounds this with preemption, which we do not have).
  Fiber* pop() {
    if (next_streak_ < kMaxNextStreak && next_.load(std::memory_order_relaxed) != nullptr) {
      // acq_rel exchange: a thief may race us for the slot.
      if (Fiber* f = next_.exchange(nullptr, std::memory_order_acq_rel)) {
        ++next_streak_;
        return f;
      }
    }
    next_streak_ = 0;
    if (Fiber* f = pop_ring()) return f;
    // An empty slot stays empty (only we fill it): skip the exchange.
    if (next_.load(std::memory_order_relaxed) == nullptr) return nullptr;
    return next_.exchange(nullptr, std::memory_order_acq_rel);
  }

  // ---- thief side (reached through Thief) ----

  // Moves about half of victim's fibers into this queue (we must be this
  // queue's owner) and returns one of them to run, or null. With
  // steal_next, also takes the victim's next slot when its ring is empty.
  Fiber* steal_half_into_me(RunQueue& victim, bool steal_next) {
    uint32_t t = tail_.load(std::memory_order_relaxed);
    uint32_t n = victim.grab(slots_, t, steal_next);
    if (n == 0) return nullptr;
    --n;
    Fiber* f = slots_[(t + n) % kCapacity].load(std::memory_order_relaxed);
    if (n != 0) tail_.store(t + n, std::memory_order_release);
    return f;
  }

  // Approximate, for idle checks by any thread.
  uint32_t size() const {
    uint32_t h = head_.load(std::memory_order_acquire);
    uint32_t t = tail_.load(std::memory_order_acquire);
    return t - h + (next_.load(std::memory_order_acquire) != nullptr ? 1 : 0);
  }
  bool empty() const { return size() == 0; }

  Fiber* pop_ring() {
    for (;;) {
      uint32_t h = head_.load(std::memory_order_acquire);
      uint32_t t = tail_.load(std::memory_order_relaxed);
      if (h == t) return nullptr;
      Fiber* f = slots_[h % kCapacity].load(std::memory_order_relaxed);
      if (head_.compare_exchange_weak(h, h + 1, std::memory_order_release, std::memory_order_relaxed)) {
        // Start loading the control block of the fiber behind f: with
        // thousands of fibers in the ring that line is rarely cached, and
        // f runs meanwhile. A hint only (a thief may take that fiber first;
        // a prefetch does not fault). The next slot needs none: whoever
        // filled it just touched that fiber.
        if (h + 1 != t) __builtin_prefetch(slots_[(h + 1) % kCapacity].load(std::memory_order_relaxed));
        return f;
      }
    }
  }

  // Appends f if the ring has room (owner only). If not, h is the head at
  // which it was full: the kCapacity slots from h are taken.
  __attribute__((always_inline)) bool try_append(Fiber* f, uint32_t& h) {
    h = head_.load(std::memory_order_acquire);           // pairs with thieves' CAS
    uint32_t t = tail_.load(std::memory_order_relaxed);  // only we write it
    if (t - h >= kCapacity) return false;
    slots_[t % kCapacity].store(f, std::memory_order_relaxed);
    tail_.store(t + 1, std::memory_order_release);  // publishes the slot
    return true;
  }

  // The ring was full at head h: move its older half and f to overflow.
  template <class Overflow>
  __attribute__((noinline)) void push_slow(Fiber* f, uint32_t h, Overflow& overflow) {
    for (;;) {
      Fiber* batch[kCapacity / 2 + 1];
      uint32_t n = kCapacity / 2;
      for (uint32_t i = 0; i < n; ++i) batch[i] = slots_[(h + i) % kCapacity].load(std::memory_order_relaxed);
      // release: as pop's CAS (a thief that copied these slots has claimed them first).
      if (!head_.compare_exchange_strong(h, h + n, std::memory_order_release, std::memory_order_relaxed)) {
        if (try_append(f, h)) return;  // a thief took some; the ring has room now
        continue;
      }
      batch[n] = f;
      overflow(batch, n + 1);
      return;
    }
  }

  // Copies up to half of this ring into dest[dest_tail...] and claims them.
  uint32_t grab(std::atomic<Fiber*>* dest, uint32_t dest_tail, bool steal_next) {
    for (;;) {
      uint32_t h = head_.load(std::memory_order_acquire);
      uint32_t t = tail_.load(std::memory_order_acquire);  // pairs with push's release
      uint32_t n = t - h;
      n -= n / 2;
      if (n == 0) {
        if (steal_next && next_.load(std::memory_order_relaxed) != nullptr) {
          if (Fiber* f = next_.exchange(nullptr, std::memory_order_acq_rel)) {
            dest[dest_tail % kCapacity].store(f, std::memory_order_relaxed);
            return 1;
          }
        }
        return 0;
      }
      if (n > kCapacity / 2) continue;  // inconsistent h/t snapshot
      for (uint32_t i = 0; i < n; ++i)
        dest[(dest_tail + i) % kCapacity].store(slots_[(h + i) % kCapacity].load(std::memory_order_relaxed),
                                                std::memory_order_relaxed);
      // acq_rel: acquire pairs with other thieves'/owner's release CAS on
      // head; release lets the owner's push reuse these slots safely.
      if (head_.compare_exchange_strong(h, h + n, std::memory_order_acq_rel, std::memory_order_relaxed)) return n;
    }
  }

  alignas(64) std::atomic<uint32_t> head_{0};  // moved by owner and thieves (CAS)
  alignas(64) std::atomic<uint32_t> tail_{0};  // written by the owner only
  std::atomic<Fiber*> next_{nullptr};          // the LIFO slot; owner sets, anyone may take
  std::atomic<Fiber*> slots_[kCapacity] = {};
  uint32_t next_streak_ = 0;  // owner only: consecutive pops from next_
};

// The owning worker's handle: every operation that moves `tail` or fills
// the next slot.
class RunQueue::Owner {
 public:
  explicit Owner(RunQueue& q) : q_(q) {}
  template <class Overflow>
  __attribute__((always_inline)) void push(Fiber* f, Overflow&& overflow) {
    q_.push(f, std::forward<Overflow>(overflow));
  }
  Fiber* set_next(Fiber* f) { return q_.set_next(f); }
  Fiber* pop() { return q_.pop(); }
  uint32_t size() const { return q_.size(); }  // exact but for thieves taking some meanwhile
  // Takes about half of the victim's fibers into this queue and returns one
  // to run (with steal_next, the victim's next slot when its ring is empty).
  Fiber* steal_half_from(Thief victim, bool steal_next);

 private:
  RunQueue& q_;
};

// Any thread's handle: looking at the size, and being stolen from (by an
// Owner, which writes into its own ring).
class RunQueue::Thief {
 public:
  explicit Thief(RunQueue& q) : q_(q) {}
  uint32_t size() const { return q_.size(); }
  bool empty() const { return q_.empty(); }

 private:
  friend class RunQueue::Owner;
  RunQueue& q_;
};

inline RunQueue::Owner RunQueue::owner() { return Owner(*this); }
inline RunQueue::Thief RunQueue::thief() { return Thief(*this); }
inline Fiber* RunQueue::Owner::steal_half_from(Thief victim, bool steal_next) {
  return q_.steal_half_into_me(victim.q_, steal_next);
}

}  // namespace gort::detail
