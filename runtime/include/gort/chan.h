// chan.h: gort::Chan<T>, Go's channels.
//
//   auto ch = gort::make_chan<int>(16);     // buffered; make_chan<int>() is unbuffered
//   go_spawn([ch] { for (int i = 0; i < 3; ++i) ch->send(i); ch->close(); });
//   for (int v : *ch) use(v);               // receives until closed and drained
//
// Semantics are Go's: an unbuffered channel is a rendezvous (send returns once
// a receiver has the value); a buffered one blocks senders only when full.
// recv() returns std::nullopt once the channel is closed and drained. Sending
// on a closed channel, and closing twice, throw gort::ChanClosed. Waiters are
// served FIFO. Every operation works from fibers (they park, the worker runs
// other fibers) and from plain threads (they block on a futex).
//
// The element type only needs a noexcept move constructor: values are moved
// under the channel's spinlock, where nothing may throw. The typed layer here
// is thin; the algorithm (after Go's runtime/chan.go) is written once, in
// runtime/src/chan.cpp, over type-erased slots. See docs/ARCHITECTURE.md,
// "Channels and select".
//
// Lifetime: share a channel by reference while its owner outlives every
// user, or through make_chan's shared_ptr. Destroying a channel that fibers
// still wait on is a fatal error.
#pragma once

#include <cstddef>
#include <cstdint>
#include <iterator>
#include <memory>
#include <new>
#include <optional>
#include <stdexcept>
#include <type_traits>
#include <utility>

#include <gort/detail/annotations.h>
#include <gort/detail/spinlock.h>
#include <gort/detail/wait_queue.h>

namespace gort {

// Thrown by send/try_send on a closed channel and by closing one twice (Go
// panics in both cases).
class ChanClosed : public std::logic_error {
 public:
  using std::logic_error::logic_error;
};

namespace detail {

// How the type-erased core moves one element. Every function is noexcept.
struct ElemOps {
  std::size_t size;                                // sizeof(T)
  std::size_t align;                               // alignof(T)
  void (*construct)(void* dst, void* src);         // new (dst) T(std::move(*src))
  void (*emplace_optional)(void* dst, void* src);  // optional<T>(*dst).emplace(std::move(*src))
  void (*destroy)(void* p);                        // p->~T()
};

template <class T>
inline constexpr ElemOps kElemOps = {
    sizeof(T),
    alignof(T),
    [](void* dst, void* src) { ::new (dst) T(std::move(*static_cast<T*>(src))); },
    [](void* dst, void* src) { static_cast<std::optional<T>*>(dst)->emplace(std::move(*static_cast<T*>(src))); },
    [](void* p) { static_cast<T*>(p)->~T(); },
};

// A channel waiter: the Waiter protocol plus how the operation ended.
// Every Waiter on a ChanCore's queues is a ChanWaiter. `data` points at the
// sender's T or at the receiver's std::optional<T>.
struct ChanWaiter : Waiter {
  bool closed = false;  // woken by close(), not by a partner (written under the channel lock)
};

class ChanCore;

// One case of a select, type-erased (see select.h).
struct SelectCase {
  ChanCore* chan;  // never null
  bool is_send;    // send case: `slot` is a T; receive case: a std::optional<T>
  void* slot;
};

// Parks the caller for good (a fiber: it counts as asleep for the deadlock
// report; a plain thread sleeps). What a nil channel's send or receive does,
// and a select with no case; `why` says which.
[[noreturn]] void block_forever(WaitReason why);

// Runs a select over n cases (runtime/src/chan.cpp): returns the index of
// the case that completed, or -1 if none was ready and !block. `order` has
// room for 2n indices and `waiters` for n ChanWaiters (uninitialised; used
// only if the select parks). Throws ChanClosed if the chosen case is a send
// on a closed channel.
int select_cases(SelectCase* cases, int n, bool block, uint16_t* order, ChanWaiter* waiters);

// The channel algorithm over type-erased elements (runtime/src/chan.cpp).
// Values cross it as pointers: a send moves from a T, a receive emplaces
// into a std::optional<T>.
class ChanCore {
 public:
  ChanCore(const ElemOps* ops, std::size_t capacity);
  ChanCore(const ChanCore&) = delete;
  ChanCore& operator=(const ChanCore&) = delete;
  ~ChanCore();  // waits for a close() under way; fatal if waited on; destroys buffered values

  void send(void* value);      // moves from *value; throws ChanClosed
  bool try_send(void* value);  // moves only when it returns true; throws ChanClosed
  void recv(void* out);        // out: std::optional<T>*, left empty when closed and drained
  void try_recv(void* out);    // likewise, never blocks: empty also when nothing is ready
  void close();                // throws ChanClosed if already closed
  std::size_t size();          // values buffered now
  std::size_t capacity() const { return capacity_; }
  bool closed();

 private:
  friend struct SelectOps;  // select's access to locks and queues (chan.cpp)
  enum class Op { kDone, kWouldBlock, kClosed };
  // The non-blocking halves, with lock_ held; both may release a partner
  // into *woken (to be woken after unlock).
  Op send_locked(void* value, Waiter** woken) GORT_REQUIRES(lock_);
  Op recv_locked(void* out, Waiter** woken) GORT_REQUIRES(lock_);
  Waiter* dequeue_claimed(WaitQueue& q) GORT_REQUIRES(lock_);
  void* slot(std::size_t i) const { return buffer_ + i * ops_->size; }

  Spinlock lock_;
  const ElemOps* const ops_;                      // T's moves
  const std::size_t capacity_;                    // ring slots; 0 = unbuffered
  unsigned char* const buffer_;                   // capacity_ slots of T, null when unbuffered
  std::size_t head_ GORT_GUARDED_BY(lock_) = 0;   // slot of the oldest buffered value (Go's recvx)
  std::size_t count_ GORT_GUARDED_BY(lock_) = 0;  // buffered values (Go's qcount)
  bool closed_ GORT_GUARDED_BY(lock_) = false;
  bool closing_ GORT_GUARDED_BY(lock_) = false;  // close() is between two of its lock holds
  WaitQueue recvq_ GORT_GUARDED_BY(lock_);       // parked receivers; non-empty only while count_ == 0
  WaitQueue sendq_ GORT_GUARDED_BY(lock_);       // parked senders; non-empty only while count_ == capacity_
};

}  // namespace detail

template <class T>
class Chan {
  static_assert(std::is_nothrow_move_constructible_v<T>,
                "gort::Chan<T>: T must be nothrow move constructible (values move under a spinlock)");
  static_assert(!std::is_reference_v<T> && !std::is_const_v<T>, "gort::Chan<T>: T must be a plain object type");

 public:
  using value_type = T;

  explicit Chan(std::size_t capacity = 0) : core_(&detail::kElemOps<T>, capacity) {}
  Chan(const Chan&) = delete;
  Chan& operator=(const Chan&) = delete;

  // Blocks until a receiver has the value (unbuffered) or it is buffered.
  // Throws ChanClosed if the channel is or becomes closed meanwhile.
  void send(T value) { core_.send(&value); }
  // Never blocks. On false, `value` is untouched (not moved from).
  bool try_send(T&& value) { return core_.try_send(&value); }
  bool try_send(const T& value) requires std::is_copy_constructible_v<T> {
    T copy(value);
    return core_.try_send(&copy);
  }
  // Blocks until a value arrives; std::nullopt once closed and drained.
  std::optional<T> recv() {
    std::optional<T> out;
    core_.recv(&out);
    return out;
  }
  // Never blocks: std::nullopt when nothing is ready (use closed() to tell
  // "closed and drained" apart).
  std::optional<T> try_recv() {
    std::optional<T> out;
    core_.try_recv(&out);
    return out;
  }
  // Wakes every waiter: receivers get std::nullopt once the buffer is
  // drained, blocked senders throw ChanClosed. Throws if already closed.
  // With many waiters it works in batches and may yield between them (and
  // resume on another thread); the channel reads as closed from the first.
  // Destroying the channel meanwhile waits for it to be done.
  void close() { core_.close(); }
  bool closed() { return core_.closed(); }
  std::size_t size() { return core_.size(); }  // buffered values now (Go's len)
  std::size_t capacity() const { return core_.capacity(); }

  // Range-for: receives until the channel is closed and drained.
  class iterator {
   public:
    using iterator_category = std::input_iterator_tag;
    using value_type = T;
    using difference_type = std::ptrdiff_t;
    using pointer = T*;
    using reference = T&;
    iterator() = default;
    explicit iterator(Chan* ch) : ch_(ch), value_(ch->recv()) {}
    T& operator*() { return *value_; }
    T* operator->() { return &*value_; }
    iterator& operator++() {
      value_ = ch_->recv();
      return *this;
    }
    void operator++(int) { ++*this; }
    bool operator==(std::default_sentinel_t) const { return !value_.has_value(); }

   private:
    Chan* ch_ = nullptr;
    std::optional<T> value_;
  };
  iterator begin() { return iterator(this); }
  std::default_sentinel_t end() { return {}; }

  detail::ChanCore& core() { return core_; }  // for select

 private:
  detail::ChanCore core_;
};

// A channel to share by pointer, like Go's make(chan T, capacity).
template <class T>
std::shared_ptr<Chan<T>> make_chan(std::size_t capacity = 0) {
  return std::make_shared<Chan<T>>(capacity);
}

// Send and receive through a shared pointer that may be null: a null one is
// Go's nil channel, on which both block forever (and a select case is
// never ready, see select.h). Closing a nil channel is a bug: it throws
// std::invalid_argument (Go panics).
template <class T, class U>
requires std::is_constructible_v<T, U&&>
void send(const std::shared_ptr<Chan<T>>& ch, U&& value) {
  if (ch == nullptr) detail::block_forever(detail::WaitReason::kChanSendNil);
  ch->send(T(std::forward<U>(value)));
}
template <class T>
std::optional<T> recv(const std::shared_ptr<Chan<T>>& ch) {
  if (ch == nullptr) detail::block_forever(detail::WaitReason::kChanReceiveNil);
  return ch->recv();
}
template <class T>
void close(const std::shared_ptr<Chan<T>>& ch) {
  if (ch == nullptr) throw std::invalid_argument("gort::close: close of nil channel");
  ch->close();
}

}  // namespace gort
