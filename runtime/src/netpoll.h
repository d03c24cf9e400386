// netpoll.h: the integrated network poller, generic part (Go's netpoll.go).
//
// Design
//  * One NetPoll per runtime, created by the first poll_open and destroyed
//    with the Scheduler. It owns a PollerBackend (poller.h: epoll today) and
//    a cache of PollDescs, one per open descriptor.
//  * Every fd is registered once, edge-triggered for read, write and hang-up.
//    An operation tries its syscall first; only on EAGAIN does the fiber park
//    on the descriptor's read or write slot (rg / wg below).
//  * Nobody runs a poller thread. Workers poll (Go's findrunnable): an idle
//    worker blocks in the backend's wait() instead of on its futex when
//    fibers wait for I/O and no other worker is blocked there (one at a
//    time: `blocked_poller`); busy workers poll without blocking when their
//    local queue runs dry and every 61st schedule, so ready I/O is not
//    starved by a stream of runnable fibers. Worker::wake breaks a blocked
//    wait() through backend.interrupt(), so every existing wake path
//    (wake_idle_worker, wake_worker_for_timer, stop) reaches a worker in the
//    poller as well as one on its futex.
//  * Deadlines are TimerNodes in the descriptor, on the ordinary timer heaps.
//
// The slots rg and wg (Go's pollDesc.rg/wg). Each holds one of
//   kPdNil    nothing pending, nobody waiting
//   kPdReady  a readiness notification is pending; the next wait consumes it
//   kPdWait   a fiber is about to park (between its check and park's commit)
//   a Fiber*  that fiber is parked here
// Transitions, per operation (every change is a CAS or an exchange):
//   prepare (before the syscall)  any of nil/ready -> nil (stale readiness
//                                 is dropped: the syscall itself will see the
//                                 data)
//   wait, fast path               ready -> nil, return kReady
//   wait, slow path               nil -> wait; re-check closing/deadline; park
//                                 with unlock step `commit`: wait -> fiber.
//                                 If the CAS fails (readiness, deadline or
//                                 close moved the slot out of `wait`), the
//                                 park is cancelled and the fiber runs on.
//                                 After waking: exchange(nil); it was `ready`
//                                 (I/O) or nil (deadline/close: re-check).
//   I/O event (poller)            nil -> ready; wait -> ready; ready -> ready;
//                                 fiber -> ready, and the event owns the fiber
//   deadline / evict (no I/O)     wait -> nil; fiber -> nil, and the caller
//                                 owns the fiber; nil and ready unchanged
// Whoever moves the slot away from a Fiber* by CAS is the only party that
// may ready that fiber: readiness, a deadline and a close racing for one
// parked reader wake it exactly once. A second fiber trying to wait on a
// slot that holds `wait` or a fiber is a fatal "double wait".
//
// closing, rd and wd are written under `lock` and read without it by
// check_error. Order that makes the re-check in wait sufficient: a waker
// stores closing/rd/wd (seq_cst) and then reads the slot (seq_cst CAS);
// the waiter stores `wait` into the slot (seq_cst CAS) and then reads
// closing/rd/wd. Either the waiter sees the new error, or the waker sees
// `wait`/fiber and takes it.
//
// Stale events after close and fd reuse: a PollDesc is freed to the cache
// and reused for another fd; its seq is bumped on free and the backend
// token carries the seq it was registered with (Go's fdseq in a tagged
// pointer). An event whose token's seq is not the descriptor's current one
// is dropped. A stale deadline timer is harmless: poll_close clears both
// deadlines, and a firing acts only if the descriptor's current deadline
// has really passed.
//
// Where PollDescs live (Go keeps its pollDescs forever; we give their
// memory back after a peak, the address space never):
//  * One reservation per NetPoll (mmap MAP_NORESERVE, kMaxPollDescs slots
//    of kPdStride bytes) is carved a page at a time; a PollDesc's address
//    never becomes invalid while the runtime runs, so a stale pointer (an
//    event fetched before the fd's EPOLL_CTL_DEL, a deadline timer popped
//    before poll_close) always reads mapped memory.
//  * The seqs live apart, in a second reservation indexed like the slots
//    and never given back: a stale event's check reads its seq there.
//  * The monitor's scavenger (NetPoll::scavenge) takes every page whose
//    descriptors were all free, none handed out or freed, for a whole
//    period off the free list (doubly linked: a page's descriptors come off
//    without a walk of the list) and gives it back (one batched
//    MADV_DONTNEED). It
//    reads as zeros from then on. What a stale party can still do to such
//    a page is harmless on zeros: the poller compares the token against
//    the seq table and drops it; a deadline firing finds its PollDesc by
//    address (never through the node's fields), reads deadline 0 (cleared
//    by poll_close, or a zero page) and returns without taking the lock; a
//    timer's `fire` is read under its heap's lock when it is popped, before
//    any of that. A page is rebuilt (its descriptors constructed again)
//    before any of them is handed out again. What this leans on: a party
//    that holds an event or a popped timer from before a close (a firing
//    that read the deadline before poll_close cleared it waits for the
//    lock, then finds none) is done with it within a whole scavenge period,
//    the least time a freed descriptor's page stays put before it goes.
// Rejected
//  * A dedicated poller thread: a thread hop (futex wake + switch) per event;
//    workers poll instead, as Go's Ms do.
//  * epoll_ctl per operation (EPOLLONESHOT): a syscall per wait.
//  * Per-descriptor mutex for the slots: readiness arrives on the poller's
//    hot path; the CAS protocol above needs no lock there.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <vector>

#include <gort/detail/netpoll.h>
#include <gort/detail/spinlock.h>

#include "fiber.h"
#include "poller.h"
#include "timer_heap.h"

namespace gort::detail {

struct Scheduler;

inline constexpr uintptr_t kPdNil = 0;
inline constexpr uintptr_t kPdReady = 1;
inline constexpr uintptr_t kPdWait = 2;

// A descriptor's state. Its seq is not here but in NetPoll's seq table,
// which is never given back (see "Where PollDescs live").
struct alignas(128) PollDesc {
  std::atomic<uintptr_t> rg{kPdNil};     // read slot: nil / ready / wait / Fiber*
  std::atomic<uintptr_t> wg{kPdNil};     // write slot
  std::atomic<int64_t> rd{0};            // read deadline: 0 none, -1 expired (under lock)
  std::atomic<int64_t> wd{0};            // write deadline
  TimerNode rt;                          // read deadline timer (in a heap while rd > 0)
  TimerNode wt;                          // write deadline timer
  PollDesc* next_free = nullptr;         // on NetPoll's free list, doubly linked (under its lock)
  PollDesc* prev_free = nullptr;
  Scheduler* sched = nullptr;            // the runtime that owns it (fixed)
  int fd = -1;                           // the registered fd (under lock)
  std::atomic<bool> closing{false};      // poll_evict was called (written under lock)
  std::atomic<bool> read_closed{false};  // sticky: the poller saw EOF/hang-up/error (poll_read_closed)
  Spinlock lock;                         // orders open/close/deadline/evict
};
// A page holds a whole number of them, so a page's descriptors can be
// given back together.
inline constexpr std::size_t kPdStride = sizeof(PollDesc);
static_assert(kPdStride == 128, "PollDesc: 32 to a 4 KiB page");
inline constexpr std::size_t kMaxPollDescs = std::size_t(1) << 21;  // above fs.nr_open's default (2^20)

// Fibers made runnable by one poll, to be queued by the worker that polled.
struct ReadyBatch {
  static constexpr int kMax = 256;  // two slots for each of 128 events
  Fiber* fibers[kMax];
  int n = 0;
};

class NetPoll {
 public:
  explicit NetPoll(Scheduler* s);
  bool init(int* error);

  ~NetPoll();
  // A free descriptor, or null when all kMaxPollDescs are in use.
  PollDesc* alloc();
  void free(PollDesc* pd);
  // The seq a token for `pd` must carry to be current (see above).
  uint32_t seq(const PollDesc* pd) const;
  // Gives back the pages whose descriptors stayed free, none handed out,
  // since the previous call; returns how many. The monitor's scavenger.
  std::size_t scavenge();
  // Descriptor pages carved, and given back, for metrics and tests.
  std::size_t pages_carved();
  std::size_t pages_cold();
  PollerBackend& backend() { return backend_; }

  // Waits up to `deadline_ns` (0: not at all) for events and claims the
  // fibers they release into `out` (each already kParked -> kRunnable).
  void poll(int64_t deadline_ns, ReadyBatch& out);

  // Fibers parked (or about to park) on a descriptor; also counted in
  // Scheduler::external_wakers for the deadlock detector.
  bool has_waiters() const { return waiters_.load(std::memory_order_seq_cst) > 0; }
  int64_t waiting() const { return waiters_.load(std::memory_order_relaxed); }  // for metrics
  void add_waiter();
  void remove_waiters(int n);

  // At most one worker blocks in the backend (Go's sched.lastpoll == 0).
  bool try_become_blocked_poller() { return !blocked_poller_.exchange(true, std::memory_order_acq_rel); }
  void stop_being_blocked_poller() { blocked_poller_.store(false, std::memory_order_release); }
  bool someone_blocked_in_poll() const { return blocked_poller_.load(std::memory_order_acquire); }

  // Polls made so far (blocking or not), for the monitor: it polls itself
  // when this has not moved for a while and nobody is blocked in a poll.
  uint64_t poll_count() const { return polls_.load(std::memory_order_relaxed); }
  // Fibers the polls made runnable (their descriptor became ready), for
  // gort::metrics(): one relaxed add per poll that readied any.
  uint64_t wakeup_count() const { return wakeups_.load(std::memory_order_relaxed); }

  const uint64_t id;  // poll_runtime_id() while this runtime runs

 private:
  Scheduler* const sched_;
  PollerBackend backend_;
  std::atomic<int64_t> waiters_{0};          // see has_waiters
  std::atomic<bool> blocked_poller_{false};  // a worker is blocked in backend_.wait
  std::atomic<uint64_t> polls_{0};           // see poll_count
  std::atomic<uint64_t> wakeups_{0};         // see wakeup_count
  // The descriptor cache (see "Where PollDescs live").
  enum class PageState : uint8_t { kWarm, kCooling, kCold };
  struct Page {
    uint16_t free = 0;     // descriptors of the page on the free list
    bool touched = false;  // one was handed out or freed since the last scavenge
    PageState state = PageState::kWarm;
  };
  uint32_t index_of(const PollDesc* pd) const {
    return uint32_t((reinterpret_cast<const char*>(pd) - slots_) / kPdStride);
  }
  Page& page_of(const PollDesc* pd) GORT_REQUIRES(cache_lock_) { return pages_[index_of(pd) / descs_per_page_]; }
  char* page_base(std::size_t page) const { return slots_ + page * page_size(); }
  void build_page(std::size_t page) GORT_REQUIRES(cache_lock_);
  void push_free(PollDesc* pd) GORT_REQUIRES(cache_lock_);
  void unlink_free(PollDesc* pd) GORT_REQUIRES(cache_lock_);
  char* slots_ = nullptr;              // kMaxPollDescs * kPdStride bytes, reserved
  uint32_t* seqs_ = nullptr;           // kMaxPollDescs seqs, reserved; atomic_ref only
  std::size_t descs_per_page_ = 0;     // page_size() / kPdStride
  Spinlock cache_lock_;
  PollDesc* free_list_ GORT_GUARDED_BY(cache_lock_) = nullptr;
  std::vector<Page> pages_ GORT_GUARDED_BY(cache_lock_);         // every page carved so far
  std::vector<uint32_t> cold_pages_ GORT_GUARDED_BY(cache_lock_);  // given back, rebuilt before the next carve
};

// The runtime's poller, or null if no descriptor was ever opened.
NetPoll* netpoll_of(Scheduler* s);
void destroy_netpoll(Scheduler* s);

}  // namespace gort::detail
