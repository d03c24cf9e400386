// chan.cpp: the channel algorithm and select, after Go's runtime/chan.go and
// runtime/select.go, on the wait-queue protocol of <gort/detail/wait_queue.h>.
//
// Design
//  * A channel is a lock, a ring of `capacity` slots and two FIFO queues of
//    parked parties (recvq, sendq). Values cross the core as pointers: a
//    sender's T, a receiver's std::optional<T>, both on the parked party's
//    stack. ElemOps moves them; every move is noexcept (Chan<T> asserts it),
//    so nothing throws under the spinlock.
//  * Direct hand-off (Go's send/recv with a sudog): a sender that finds a
//    parked receiver moves its value straight into the receiver's optional,
//    and a receiver that finds a parked sender moves the value straight out
//    of the sender's T. The ring is used only when nobody waits. Hence the
//    invariants, under the lock:
//        recvq non-empty  =>  count == 0   (a receiver waits only when empty)
//        sendq non-empty  =>  count == capacity
//        closed           =>  nobody joins recvq or sendq, and nobody is
//                             matched with a party still on them; both are
//                             empty once close() has returned
//  * A receiver that finds a parked sender on a full buffered channel takes
//    the oldest buffered value and moves the sender's value into the slot it
//    freed (the ring's tail is its head when full), keeping FIFO order.
//  * close() marks the channel and takes every waiter off both queues;
//    receivers wake with an empty optional, senders throw ChanClosed. It
//    works in batches of WaiterChain::kWakeBatch: each is taken off under the
//    lock, with a preemption point between batches and between the wakes
//    after the last one, so that closing a channel that a million fibers
//    wait on holds neither the lock nor the worker for longer than a batch
//    past its time slice (Go's closechan does it all at once, but Go does
//    not count the runtime's own code against a slice). Between batches the
//    channel is closed to everyone: send finds it closed, and receive does
//    not take a value from a sender still queued (recv_locked). Every wake
//    comes after the last access to the channel, as the wait-queue protocol
//    requires: a woken party may destroy it. A party that was not woken
//    but saw the channel closed between two batches may destroy it too:
//    the destructor waits until close() has made its last access.
//
// Select (Go's selectgo)
//  1. Shuffle the cases into pollorder (uniform random: fairness when several
//     are ready) and sort them by channel address into lockorder.
//  2. Lock every distinct channel in lockorder. That single global order is
//     why concurrent selects over overlapping channels cannot deadlock; a
//     channel that appears twice is locked once.
//  3. Pass 1: in pollorder, try each case without blocking. First success
//     wins: unlock all, wake the partner, return.
//  4. No case ready: with a default, unlock all and return -1. Otherwise
//     enqueue one ChanWaiter per case (in lockorder), all sharing one claim
//     word, and park. The park's unlock step releases the locks in reverse
//     lockorder after the fiber has switched out.
//  5. A waker on any of those channels dequeues our waiter and must win
//     try_claim() (CAS claim 0 -> case + 1) before it moves a value or
//     reports close; a loser just drops the waiter. So exactly one case
//     completes and the fiber is woken exactly once.
//  6. Woken: lock all again, remove our waiters still queued (they live on
//     our stack; a losing waker may already have dropped some), unlock all.
//     The claim word names the winning case.
// Cases on nil channels never get here (select.h leaves them out), so every
// case has a channel and select over nothing but nil channels is select{}.
//
// Lock order: channel locks by address, and nothing else is taken under
// them except scheduler internals via wake() (which happens after unlock)
// and TimerHeap/park internals, which never take a channel lock.
//
// Rejected
//  * A lock-free ring (Vyukov / Go's proposed lock-free channels): closing,
//    select and FIFO waiters all need the queues and the ring to change
//    together; the spinlock's critical sections are a few stores.
//  * Per-case heap-allocated waiters: the waiters live on the selecting
//    party's stack, like Go's sudogs (which Go caches per P instead).
//  * A template-per-T algorithm: select over channels of different element
//    types needs a type-erased core anyway; one copy serves both.
#include <gort/chan.h>
#include <gort/runtime.h>

#include <chrono>
#include <functional>
#include <thread>

#include "park.h"
#include "platform.h"
#include "scheduler.h"

namespace gort::detail {

namespace {

// Wakes a dequeued channel waiter. A kernel thread waiting in select sleeps
// on the claim word first (it cannot know which of its waiters will be
// signalled), so it gets a second futex wake there. Everything is read
// before wake(): the woken party may free w at once.
void wake_waiter(Waiter* w) {
  std::atomic<uint32_t>* claim = w->fiber == nullptr ? w->claim : nullptr;
  wake(w);
  if (claim != nullptr) futex_wake(claim, 1);
}

// Cheap per-thread randomness for pollorder. Never held across a
// suspension: read and written in one call (see "Thread-locals").
__attribute__((noinline)) uint32_t fast_random(uint32_t bound) {
  static thread_local uint64_t state = 0;
  if (state == 0) state = (uint64_t(now_ns()) ^ reinterpret_cast<uintptr_t>(&state)) | 1;
  state ^= state << 13;
  state ^= state >> 7;
  state ^= state << 17;
  return uint32_t((uint64_t(uint32_t(state >> 32)) * bound) >> 32);
}

[[noreturn]] void throw_send_closed() { throw ChanClosed("gort::Chan: send on closed channel"); }

}  // namespace

ChanCore::ChanCore(const ElemOps* ops, std::size_t capacity)
    : ops_(ops),
      capacity_(capacity),
      buffer_(capacity == 0
                  ? nullptr
                  : static_cast<unsigned char*>(::operator new(capacity * ops->size, std::align_val_t(ops->align)))) {}

ChanCore::~ChanCore() {
  lock_.lock();
  // A close() between two of its lock holds comes back to the channel, and
  // a party that saw it closed may be destroying it: wait until it is done
  // (it is runnable, preempted at a time slice).
  while (closing_) {
    lock_.unlock();
    gort::yield();
    lock_.lock();
  }
  bool waited_on = !recvq_.empty() || !sendq_.empty();
  for (std::size_t i = 0; i < count_; ++i) ops_->destroy(slot((head_ + i) % capacity_));
  lock_.unlock();
  if (waited_on) fatal("gort::Chan destroyed while fibers wait on it");
  if (buffer_ != nullptr) ::operator delete(buffer_, std::align_val_t(ops_->align));
}

__attribute__((always_inline)) inline Waiter* ChanCore::dequeue_claimed(WaitQueue& q) {
  while (Waiter* w = q.pop_front())
    if (try_claim(w)) return w;
  return nullptr;
}

__attribute__((always_inline)) inline ChanCore::Op ChanCore::send_locked(void* value, Waiter** woken) {
  if (closed_) return Op::kClosed;
  if (Waiter* r = dequeue_claimed(recvq_)) {
    ops_->emplace_optional(r->data, value);  // straight onto the receiver's stack
    *woken = r;
    return Op::kDone;
  }
  if (count_ < capacity_) {
    ops_->construct(slot((head_ + count_) % capacity_), value);
    ++count_;
    return Op::kDone;
  }
  return Op::kWouldBlock;
}

__attribute__((always_inline)) inline ChanCore::Op ChanCore::recv_locked(void* out, Waiter** woken) {
  // A sender still queued on a closed channel is one close() has yet to
  // reach: it throws, it is not received from.
  if (Waiter* s = sendq_.empty() || closed_ ? nullptr : dequeue_claimed(sendq_)) {
    if (capacity_ == 0) {
      ops_->emplace_optional(out, s->data);  // straight off the sender's stack
    } else {
      // Full ring: take the oldest, put the sender's value in its slot.
      void* h = slot(head_);
      ops_->emplace_optional(out, h);
      ops_->destroy(h);
      ops_->construct(h, s->data);
      head_ = (head_ + 1) % capacity_;
    }
    *woken = s;
    return Op::kDone;
  }
  if (count_ > 0) {
    void* h = slot(head_);
    ops_->emplace_optional(out, h);
    ops_->destroy(h);
    head_ = (head_ + 1) % capacity_;
    --count_;
    return Op::kDone;
  }
  if (closed_) return Op::kClosed;  // *out stays empty
  return Op::kWouldBlock;
}

void ChanCore::send(void* value) {
  lock_.lock();
  Waiter* woken = nullptr;
  Op op = send_locked(value, &woken);
  if (op != Op::kWouldBlock) {
    lock_.unlock();
    if (op == Op::kClosed) throw_send_closed();
    if (woken) wake_waiter(woken);
    preemption_point_inline();  // did not block: the time slice is checked here (monitor.h)
    return;
  }
  ChanWaiter w;
  prepare_wait(&w);
  w.data = value;
  sendq_.push_back(&w);
  block(&w, lock_, WaitReason::kChanSend);
  // A receiver moved the value out, or close() woke us.
  if (w.closed) throw_send_closed();
}

bool ChanCore::try_send(void* value) {
  lock_.lock();
  Waiter* woken = nullptr;
  Op op = send_locked(value, &woken);
  lock_.unlock();
  if (op == Op::kClosed) throw_send_closed();
  if (woken) wake_waiter(woken);
  preemption_point_inline();
  return op == Op::kDone;
}

void ChanCore::recv(void* out) {
  lock_.lock();
  Waiter* woken = nullptr;
  if (recv_locked(out, &woken) != Op::kWouldBlock) {
    lock_.unlock();
    if (woken) wake_waiter(woken);
    preemption_point_inline();
    return;
  }
  ChanWaiter w;
  prepare_wait(&w);
  w.data = out;
  recvq_.push_back(&w);
  block(&w, lock_, WaitReason::kChanReceive);
  // A sender filled *out, or close() left it empty.
}

void ChanCore::try_recv(void* out) {
  lock_.lock();
  Waiter* woken = nullptr;
  recv_locked(out, &woken);
  lock_.unlock();
  if (woken) wake_waiter(woken);
  preemption_point_inline();
}

void ChanCore::close() {
  lock_.lock();
  if (closed_) {
    lock_.unlock();
    throw ChanClosed("gort::Chan: close of closed channel");
  }
  closed_ = true;
  // Take every waiter off under the lock, a batch per hold, and wake each
  // full batch between two holds, the last after the last hold
  // (WaiterChain). The waiters taken are claimed and parked: nothing but
  // this call touches them until they are woken. A woken one may destroy
  // the channel while this call is between two holds: closing_ makes the
  // destructor wait until the last hold is over.
  WaiterChain chain;
  closing_ = true;
  chain.take_waking_preemptibly(
      lock_,
      [&]() GORT_REQUIRES(lock_) -> Waiter* {
        Waiter* w = dequeue_claimed(recvq_);
        if (w == nullptr) w = dequeue_claimed(sendq_);
        if (w != nullptr) static_cast<ChanWaiter*>(w)->closed = true;
        return w;
      },
      wake_waiter);
  closing_ = false;
  lock_.unlock();  // the last access to the channel
  chain.wake_all_preemptibly(wake_waiter);
}

std::size_t ChanCore::size() {
  lock_.lock();
  std::size_t n = count_;
  lock_.unlock();
  return n;
}

bool ChanCore::closed() {
  lock_.lock();
  bool c = closed_;
  lock_.unlock();
  return c;
}

// ---- select ----

// select's view of ChanCore internals (a friend of it).
struct SelectOps {
  using Op = ChanCore::Op;
  static Spinlock& lock(ChanCore* c) { return c->lock_; }
  static WaitQueue& queue(const SelectCase& c) { return c.is_send ? c.chan->sendq_ : c.chan->recvq_; }
  static Op try_case(const SelectCase& c, Waiter** woken) GORT_NO_THREAD_SAFETY_ANALYSIS {
    return c.is_send ? c.chan->send_locked(c.slot, woken) : c.chan->recv_locked(c.slot, woken);
  }
};

namespace {

struct SelectLocks {
  SelectCase* cases;
  const uint16_t* lockorder;
  int n;
};

ChanCore* chan_at(const SelectLocks& l, int k) { return l.cases[l.lockorder[k]].chan; }

void lock_all(const SelectLocks& l) GORT_NO_THREAD_SAFETY_ANALYSIS {
  for (int k = 0; k < l.n; ++k)
    if (k == 0 || chan_at(l, k) != chan_at(l, k - 1)) SelectOps::lock(chan_at(l, k)).lock();
}

// Reverse lockorder: the woken fiber re-locks starting at lockorder[0], so
// it cannot get past its first lock, let alone free `l`, until the last
// unlock here, after which `l` is not touched (Go's selunlock).
void unlock_all(const SelectLocks* l) GORT_NO_THREAD_SAFETY_ANALYSIS {
  for (int k = l->n - 1; k >= 0; --k)
    if (k == 0 || chan_at(*l, k) != chan_at(*l, k - 1)) SelectOps::lock(chan_at(*l, k)).unlock();
}

void sort_by_channel(SelectCase* cases, uint16_t* lockorder, int n) {
  // Insertion sort: selects have few cases, and it needs no allocation.
  for (int i = 0; i < n; ++i) {
    uint16_t c = uint16_t(i);
    int j = i;
    for (; j > 0 && std::less<ChanCore*>()(cases[c].chan, cases[lockorder[j - 1]].chan); --j)
      lockorder[j] = lockorder[j - 1];
    lockorder[j] = c;
  }
}

// Step 5's thread side: sleep until some waker claims a case, then until
// that waker has signalled the claimed waiter (it moved the value first).
int wait_as_thread(std::atomic<uint32_t>* claim, ChanWaiter* waiters) {
  uint32_t c;
  // acquire: pairs with the winner's CAS in try_claim().
  while ((c = claim->load(std::memory_order_acquire)) == 0) futex_wait(claim, 0, kNever);
  Waiter* w = &waiters[c - 1];
  // acquire: pairs with wake()'s release of `signaled`.
  while (w->signaled.load(std::memory_order_acquire) == 0) futex_wait(&w->signaled, 0, kNever);
  return int(c - 1);
}

}  // namespace

void block_forever(WaitReason why) {
  if (current_fiber() != nullptr) {
    // Nothing holds a wake right: the fiber stays parked for good.
    bool (*publish_nothing)(void*) = [](void*) { return true; };
    park(why, publish_nothing, nullptr);
  }
  for (;;) std::this_thread::sleep_for(std::chrono::hours(1));
}

int select_cases(SelectCase* cases, int n, bool block, uint16_t* order,
                 ChanWaiter* waiters) GORT_NO_THREAD_SAFETY_ANALYSIS {
  if (n == 0) {
    if (!block) return -1;
    block_forever(WaitReason::kSelectNoCases);  // Go's `select {}`
  }
  // 1. pollorder: an inside-out Fisher-Yates shuffle; lockorder: by address.
  uint16_t* pollorder = order;
  uint16_t* lockorder = order + n;
  for (int i = 0; i < n; ++i) {
    int j = int(fast_random(uint32_t(i + 1)));
    pollorder[i] = pollorder[j];
    pollorder[j] = uint16_t(i);
  }
  sort_by_channel(cases, lockorder, n);
  SelectLocks locks{cases, lockorder, n};

  // 2-3. Lock all, then look for a ready case.
  lock_all(locks);
  for (int k = 0; k < n; ++k) {
    SelectCase& c = cases[pollorder[k]];
    Waiter* woken = nullptr;
    SelectOps::Op op = SelectOps::try_case(c, &woken);
    if (op == SelectOps::Op::kWouldBlock) continue;
    unlock_all(&locks);
    if (woken) wake_waiter(woken);
    if (op == SelectOps::Op::kClosed && c.is_send) throw_send_closed();
    preemption_point_inline();
    return pollorder[k];
  }
  if (!block) {
    unlock_all(&locks);
    preemption_point_inline();
    return -1;
  }

  // 4. Enqueue on every channel, then park; the unlock step releases all.
  std::atomic<uint32_t> claim{0};
  for (int k = 0; k < n; ++k) {
    int i = lockorder[k];
    ChanWaiter* w = ::new (&waiters[i]) ChanWaiter;
    prepare_wait(w);
    w->claim = &claim;
    w->tag = uint64_t(i);
    w->data = cases[i].slot;
    SelectOps::queue(cases[i]).push_back(w);
  }
  int winner;
  if (waiters[0].fiber != nullptr) {
    park(
        WaitReason::kSelect,
        [](void* l) {
          unlock_all(static_cast<SelectLocks*>(l));
          return true;
        },
        &locks);
    // 5. Woken by the one waker that won the claim. acquire: pairs with its CAS.
    winner = int(claim.load(std::memory_order_acquire)) - 1;
  } else {
    unlock_all(&locks);
    winner = wait_as_thread(&claim, waiters);
  }
  GORT_CHECK(winner >= 0 && winner < n);

  // 6. Take our other waiters off their queues before they go out of scope.
  lock_all(locks);
  for (int i = 0; i < n; ++i) {
    ChanWaiter& w = waiters[i];
    if (i != winner && w.queued) SelectOps::queue(cases[i]).remove(&w);
  }
  unlock_all(&locks);
  if (waiters[winner].closed && cases[winner].is_send) throw_send_closed();
  return winner;
}

}  // namespace gort::detail
