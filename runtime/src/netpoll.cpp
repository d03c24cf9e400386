// netpoll.cpp: the generic network poller (see netpoll.h for the design and
// the slot state machine) and the worker's side of it: sleeping in the
// poller when idle, polling without blocking when busy.
#include "netpoll.h"

#include <sys/mman.h>

#include <cerrno>
#include <cstddef>
#include <mutex>
#include <new>

#include "park.h"
#include "platform.h"
#include "scheduler.h"

namespace gort::detail {

namespace {

std::atomic<uint64_t> g_next_runtime_id{1};

constexpr int kSeqShift = 48;  // user-space pointers fit in 47 bits
constexpr uint64_t kPointerMask = (uint64_t(1) << kSeqShift) - 1;
constexpr uint32_t kSeqMask = 0xFFFF;

uint64_t token_of(PollDesc* pd, uint32_t seq) {
  return uint64_t(reinterpret_cast<uintptr_t>(pd)) | (uint64_t(seq & kSeqMask) << kSeqShift);
}

std::atomic<uintptr_t>& slot_of(PollDesc* pd, PollMode mode) { return mode == PollMode::kRead ? pd->rg : pd->wg; }

// Go's netpollcheckerr. Reads without the lock: see "closing, rd and wd" in
// netpoll.h for why a seq_cst load after the slot CAS is enough.
PollStatus check_error(PollDesc* pd, PollMode mode) {
  if (pd->closing.load(std::memory_order_seq_cst)) return PollStatus::kClosing;
  int64_t deadline = (mode == PollMode::kRead ? pd->rd : pd->wd).load(std::memory_order_seq_cst);
  if (deadline < 0) return PollStatus::kTimeout;
  return PollStatus::kReady;
}

// Why a slot is moved: an I/O event makes it ready; a deadline or a close
// puts it back to nil, and the woken waiter finds the error itself.
enum class Unblock : uint8_t { kIoReady, kDeadlineOrClose };

// Go's netpollunblock: moves the slot on behalf of an I/O event or a
// deadline/close and returns the parked fiber this call now owns, or null.
// The CAS on a Fiber* value is what makes the wake-up unique.
Fiber* unblock(std::atomic<uintptr_t>& slot, Unblock why) {
  const bool ioready = why == Unblock::kIoReady;
  for (;;) {
    uintptr_t old = slot.load(std::memory_order_seq_cst);
    // Already ready: an I/O event still writes (ready -> ready), so that a
    // reader's exchange in poll_prepare that reads the slot afterwards
    // synchronises with this event and sees pd->read_closed.
    if (old == kPdReady && !ioready) return nullptr;
    if (old == kPdNil && !ioready) return nullptr;  // the next wait checks the error itself
    uintptr_t desired = ioready ? kPdReady : kPdNil;
    // seq_cst: pairs with block()'s CAS nil -> wait and commit()'s CAS
    // wait -> fiber; for !ioready it follows the store of closing/rd/wd.
    if (slot.compare_exchange_strong(old, desired, std::memory_order_seq_cst)) {
      return old > kPdWait ? reinterpret_cast<Fiber*>(old) : nullptr;
    }
  }
}

// Readies fibers taken from slots outside the poller (deadline, evict) and
// only then uncounts them: the deadlock check must see them queued first.
void ready_taken(NetPoll* np, Fiber* a, Fiber* b) {
  int n = 0;
  for (Fiber* f : {a, b}) {
    if (f == nullptr) continue;
    ready(f);
    ++n;
  }
  if (n > 0) np->remove_waiters(n);
}

// park()'s unlock step for a descriptor wait (Go's netpollblockcommit).
struct Commit {
  std::atomic<uintptr_t>* slot;  // rg or wg
  Fiber* self;                   // the parking fiber
  NetPoll* np;
};

bool commit(void* arg) {
  auto* c = static_cast<Commit*>(arg);
  NetPoll* np = c->np;  // copy out: after the CAS the fiber may run and free *c
  uintptr_t expected = kPdWait;
  // seq_cst: pairs with unblock()'s CAS. After success the fiber is
  // published: an event, a deadline or evict may ready it at once.
  if (c->slot->compare_exchange_strong(expected, reinterpret_cast<uintptr_t>(c->self), std::memory_order_seq_cst))
    return true;
  np->remove_waiters(1);  // readiness or an error came first: do not park
  return false;
}

// Go's netpollblock: true if I/O readiness was consumed, false if the wait
// ended for another reason (the caller re-checks closing and deadlines).
bool block(PollDesc* pd, PollMode mode, WaitReason why) {
  auto& slot = slot_of(pd, mode);
  for (;;) {
    uintptr_t expected = kPdReady;
    if (slot.compare_exchange_strong(expected, kPdNil, std::memory_order_seq_cst)) return true;
    expected = kPdNil;
    if (slot.compare_exchange_strong(expected, kPdWait, std::memory_order_seq_cst)) break;
    if (expected != kPdReady && expected != kPdNil)
      fatal("netpoll: double wait on fd %d (two fibers %s the same descriptor at once)", pd->fd,
            mode == PollMode::kRead ? "read" : "write");
  }
  // Re-check after publishing `wait`: evict and deadlines store first and
  // read the slot second (netpoll.h).
  if (check_error(pd, mode) == PollStatus::kReady) {
    NetPoll* np = netpoll_of(pd->sched);
    np->add_waiter();              // counted before anyone can take us: never negative
    Worker* w = current_worker();  // read afresh: a wait that loops may have moved workers
    Commit c{&slot, w->current.load(std::memory_order_relaxed), np};
    c.self->wait_fd.store(pd->fd, std::memory_order_relaxed);  // for the fiber dump (fiber.h)
    park_on(w, why, &commit, &c);
  }
  uintptr_t old = slot.exchange(kPdNil, std::memory_order_seq_cst);
  GORT_CHECK(old <= kPdWait);
  return old == kPdReady;
}

TimerHeap& heap_for(Scheduler* s) {
  Worker* w = current_worker();
  return (w != nullptr && w->sched == s) ? w->timers : s->worker_at(0)->timers;
}

// Puts a deadline timer (in no heap) into one for `when`, waking a worker
// if it is now the earliest. Adds happen under pd->lock only.
void arm(PollDesc* pd, TimerNode& t, int64_t when) GORT_REQUIRES(pd->lock) {
  t.when = when;
  if (heap_for(pd->sched).add(&t)) pd->sched->wake_worker_for_timer(when);
}

// The descriptor a deadline timer belongs to, by address: the node's own
// fields may already read as zeros (a page given back after poll_close;
// netpoll.h, "Where PollDescs live").
template <PollMode M>
PollDesc* owner_of(TimerNode* node) {
  constexpr std::size_t offset = M == PollMode::kRead ? offsetof(PollDesc, rt) : offsetof(PollDesc, wt);
  return reinterpret_cast<PollDesc*>(reinterpret_cast<char*>(node) - offset);
}

template <PollMode M>
void deadline_fired(TimerNode* node) {
  PollDesc* pd = owner_of<M>(node);
  auto& deadline = M == PollMode::kRead ? pd->rd : pd->wd;
  // No deadline: nothing to do, and the lock is left alone. A firing that
  // was popped before poll_close returns here, so it never holds the lock
  // of a descriptor whose page is given back and rebuilt (which resets the
  // lock). relaxed: a deadline set meanwhile has armed the timer again.
  if (deadline.load(std::memory_order_relaxed) <= 0) return;
  Fiber* f = nullptr;
  {
    SpinGuard guard(pd->lock);
    int64_t d = deadline.load(std::memory_order_relaxed);
    // Stale firing (the deadline was cleared, already expired, or the
    // descriptor was closed or reused): the current deadline decides.
    if (d <= 0) return;
    if (d > now_ns()) {
      // Moved later while armed (set_one_deadline leaves the timer where it
      // was): arm it again for the current deadline. Only if no one re-armed
      // it meanwhile: adds happen under pd->lock only, so owner == null here
      // means it is in no heap and nobody else can add it.
      if (node->owner.load(std::memory_order_acquire) == nullptr) arm(pd, *node, d);
      return;
    }
    deadline.store(-1, std::memory_order_seq_cst);
    f = unblock(slot_of(pd, M), Unblock::kDeadlineOrClose);
  }
  ready_taken(netpoll_of(pd->sched), f, nullptr);
}

// Under pd->lock. Sets one mode's deadline; returns a fiber to ready.
Fiber* set_one_deadline(PollDesc* pd, PollMode mode, int64_t deadline_ns) GORT_REQUIRES(pd->lock) {
  TimerNode& t = mode == PollMode::kRead ? pd->rt : pd->wt;
  auto& deadline = mode == PollMode::kRead ? pd->rd : pd->wd;
  // Moving an armed deadline later (a connection that sets "now + timeout"
  // before every request) does not touch the heap: the timer fires at the
  // old time and deadline_fired arms it again for the current deadline (Go's
  // timerModifiedLater). One heap operation per timeout period instead of a
  // remove and an add per request. If the timer is being popped right now,
  // its fire waits for pd->lock and then sees the new deadline.
  int64_t now = now_ns();
  if (deadline_ns > now && t.owner.load(std::memory_order_acquire) != nullptr && deadline_ns >= t.when &&
      deadline.load(std::memory_order_relaxed) > 0) {
    deadline.store(deadline_ns, std::memory_order_seq_cst);
    return nullptr;
  }
  // false when not armed, or firing right now: then deadline_fired will see
  // the new value and do nothing unless it has passed.
  TimerHeap::remove(&t);
  if (deadline_ns == 0) {
    deadline.store(0, std::memory_order_seq_cst);
    return nullptr;
  }
  if (deadline_ns <= now) {
    deadline.store(-1, std::memory_order_seq_cst);
    return unblock(slot_of(pd, mode), Unblock::kDeadlineOrClose);
  }
  deadline.store(deadline_ns, std::memory_order_seq_cst);
  arm(pd, t, deadline_ns);
  return nullptr;
}

}  // namespace

// ---- NetPoll ----

NetPoll::NetPoll(Scheduler* s) : id(g_next_runtime_id.fetch_add(1)), sched_(s) {}

NetPoll::~NetPoll() {
  if (slots_ != nullptr) munmap(slots_, kMaxPollDescs * kPdStride);
  if (seqs_ != nullptr) munmap(seqs_, kMaxPollDescs * sizeof(uint32_t));
}

bool NetPoll::init(int* error) {
  // Address space only: pages are committed as descriptors are first used.
  auto reserve = [](std::size_t bytes) -> void* {
    void* p = mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    return p == MAP_FAILED ? nullptr : p;
  };
  slots_ = static_cast<char*>(reserve(kMaxPollDescs * kPdStride));
  seqs_ = static_cast<uint32_t*>(reserve(kMaxPollDescs * sizeof(uint32_t)));
  if (slots_ == nullptr || seqs_ == nullptr) {
    *error = errno;
    return false;  // the destructor unmaps what was reserved
  }
  descs_per_page_ = page_size() / kPdStride;
  return backend_.init(error);
}

// Constructs a page's descriptors (fresh, or given back: zeros either way)
// and puts them on the free list. Their seqs carry on in the seq table.
void NetPoll::build_page(std::size_t page) {
  char* base = page_base(page);
  unpoison_fresh_memory(base, page_size());
  unpoison_fresh_memory(&seqs_[page * descs_per_page_], descs_per_page_ * sizeof(uint32_t));
  for (std::size_t i = descs_per_page_; i-- > 0;) {
    auto* pd = new (base + i * kPdStride) PollDesc;
    pd->sched = sched_;
    pd->rt.fire = &deadline_fired<PollMode::kRead>;
    pd->wt.fire = &deadline_fired<PollMode::kWrite>;
    push_free(pd);
  }
  pages_[page] = Page{uint16_t(descs_per_page_), false, PageState::kWarm};
}

PollDesc* NetPoll::alloc() {
  SpinGuard guard(cache_lock_);
  if (free_list_ == nullptr) {
    if (!cold_pages_.empty()) {
      std::size_t page = cold_pages_.back();
      cold_pages_.pop_back();
      build_page(page);
    } else {
      if ((pages_.size() + 1) * descs_per_page_ > kMaxPollDescs) return nullptr;
      pages_.emplace_back();
      build_page(pages_.size() - 1);
    }
  }
  PollDesc* pd = free_list_;
  unlink_free(pd);
  Page& page = page_of(pd);
  --page.free;
  page.touched = true;
  return pd;
}

void NetPoll::push_free(PollDesc* pd) {
  pd->prev_free = nullptr;
  pd->next_free = free_list_;
  if (free_list_ != nullptr) free_list_->prev_free = pd;
  free_list_ = pd;
}

void NetPoll::unlink_free(PollDesc* pd) {
  (pd->prev_free != nullptr ? pd->prev_free->next_free : free_list_) = pd->next_free;
  if (pd->next_free != nullptr) pd->next_free->prev_free = pd->prev_free;
  pd->next_free = pd->prev_free = nullptr;
}

void NetPoll::free(PollDesc* pd) {
  // Events still queued in the kernel or in a poller's hands carry the old
  // seq and are dropped from now on (Go's pollCache.free).
  std::atomic_ref<uint32_t>(seqs_[index_of(pd)]).fetch_add(1, std::memory_order_seq_cst);
  SpinGuard guard(cache_lock_);
  push_free(pd);
  Page& page = page_of(pd);
  ++page.free;
  // A page goes back only a whole period after its last free, so a party
  // still holding the descriptor from before (netpoll.h) finds it in place.
  page.touched = true;
}

uint32_t NetPoll::seq(const PollDesc* pd) const {
  // acquire: pairs with free()'s increment.
  return std::atomic_ref<uint32_t>(seqs_[index_of(pd)]).load(std::memory_order_acquire);
}

// Pages are taken off the free list and marked kCooling under the lock,
// given back outside it (alloc never rebuilds a cooling page), and become
// kCold under the lock again.
std::size_t NetPoll::scavenge() {
  std::vector<uint32_t> cooling;
  {
    SpinGuard guard(cache_lock_);
    for (std::size_t i = 0; i < pages_.size(); ++i) {
      Page& page = pages_[i];
      if (page.state == PageState::kWarm && page.free == descs_per_page_ && !page.touched) {
        page.state = PageState::kCooling;
        cooling.push_back(uint32_t(i));
        for (std::size_t k = 0; k < descs_per_page_; ++k)
          unlink_free(reinterpret_cast<PollDesc*>(page_base(i) + k * kPdStride));
      }
      page.touched = false;
    }
    if (cooling.empty()) return 0;
  }
  MadviseBatch dontneed(MADV_DONTNEED);
  for (uint32_t page : cooling) dontneed.add(page_base(page), page_size());
  dontneed.flush();
  SpinGuard guard(cache_lock_);
  for (uint32_t page : cooling) {
    pages_[page].state = PageState::kCold;
    cold_pages_.push_back(page);
  }
  return cooling.size();
}

std::size_t NetPoll::pages_carved() {
  SpinGuard guard(cache_lock_);
  return pages_.size();
}

std::size_t NetPoll::pages_cold() {
  SpinGuard guard(cache_lock_);
  return cold_pages_.size();
}

void NetPoll::add_waiter() {
  waiters_.fetch_add(1, std::memory_order_seq_cst);
  // seq_cst: read by nothing_can_run (deadlock check) under idle_mu.
  sched_->external_wakers.fetch_add(1, std::memory_order_seq_cst);
}

void NetPoll::remove_waiters(int n) {
  sched_->external_wakers.fetch_sub(n, std::memory_order_seq_cst);
  waiters_.fetch_sub(n, std::memory_order_seq_cst);
}

void NetPoll::poll(int64_t deadline_ns, ReadyBatch& out) {
  // relaxed: the monitor only compares samples of it (monitor.h, "Network").
  polls_.fetch_add(1, std::memory_order_relaxed);
  PollEvent events[ReadyBatch::kMax / 2];
  int n = backend_.wait(deadline_ns, events, ReadyBatch::kMax / 2);
  int readied_before = out.n;
  for (int i = 0; i < n; ++i) {
    auto* pd = reinterpret_cast<PollDesc*>(events[i].token & kPointerMask);
    uint32_t tag = uint32_t(events[i].token >> kSeqShift);
    // A stale event is dropped; its descriptor's page may read as zeros.
    if ((seq(pd) & kSeqMask) != tag) continue;
    // release: orders the flag before the wake-up; poll_read_closed acquires.
    if (events[i].read_closed) pd->read_closed.store(true, std::memory_order_release);
    Fiber* r = events[i].readable ? unblock(pd->rg, Unblock::kIoReady) : nullptr;
    Fiber* w = events[i].writable ? unblock(pd->wg, Unblock::kIoReady) : nullptr;
    for (Fiber* f : {r, w}) {
      if (f == nullptr) continue;
      f->claim_for_ready();
      out.fibers[out.n++] = f;
    }
  }
  // relaxed: a statistic (wakeup_count).
  if (out.n > readied_before) wakeups_.fetch_add(uint64_t(out.n - readied_before), std::memory_order_relaxed);
}

NetPoll* netpoll_of(Scheduler* s) { return s->netpoll.load(std::memory_order_acquire); }

void destroy_netpoll(Scheduler* s) { delete s->netpoll.exchange(nullptr); }

static NetPoll* ensure_netpoll(Scheduler* s, int* error) {
  if (NetPoll* np = netpoll_of(s)) return np;
  auto fresh = std::make_unique<NetPoll>(s);
  if (!fresh->init(error)) return nullptr;
  NetPoll* expected = nullptr;
  // acq_rel: publishes the initialised poller to netpoll_of's acquire.
  if (s->netpoll.compare_exchange_strong(expected, fresh.get(), std::memory_order_acq_rel)) return fresh.release();
  return expected;  // another fiber won; ours is closed by unique_ptr
}

// ---- the seam with gort::net (<gort/detail/netpoll.h>) ----

PollDesc* poll_open(int fd, int* error) {
  Scheduler* s = current_scheduler();
  if (s == nullptr) {
    *error = 0;  // no runtime: not an errno (see netpoll.h)
    return nullptr;
  }
  NetPoll* np = ensure_netpoll(s, error);
  if (np == nullptr) return nullptr;
  PollDesc* pd = np->alloc();
  if (pd == nullptr) {
    *error = EMFILE;  // kMaxPollDescs descriptors registered at once
    return nullptr;
  }
  uint32_t seq;
  {
    SpinGuard guard(pd->lock);
    uintptr_t r = pd->rg.load(std::memory_order_relaxed), w = pd->wg.load(std::memory_order_relaxed);
    GORT_CHECK(r <= kPdReady && w <= kPdReady);  // nobody waits on a free descriptor
    pd->fd = fd;
    pd->closing.store(false, std::memory_order_seq_cst);
    pd->read_closed.store(false, std::memory_order_relaxed);
    pd->rd.store(0, std::memory_order_relaxed);
    pd->wd.store(0, std::memory_order_relaxed);
    pd->rg.store(kPdNil, std::memory_order_relaxed);
    pd->wg.store(kPdNil, std::memory_order_relaxed);
    seq = np->seq(pd);
  }
  int err = np->backend().open(fd, token_of(pd, seq));
  if (err != 0) {
    np->free(pd);
    *error = err;
    return nullptr;
  }
  return pd;
}

void poll_close(PollDesc* pd) {
  NetPoll* np = netpoll_of(pd->sched);
  {
    SpinGuard guard(pd->lock);
    GORT_CHECK(pd->closing.load(std::memory_order_relaxed));             // poll_evict first
    GORT_CHECK(pd->rg.load() <= kPdReady && pd->wg.load() <= kPdReady);  // nobody waits
    TimerHeap::remove(&pd->rt);
    TimerHeap::remove(&pd->wt);
    // A timer popped before the removes finds no deadline and does nothing:
    // it may run after this descriptor's page was given back.
    pd->rd.store(0, std::memory_order_relaxed);
    pd->wd.store(0, std::memory_order_relaxed);
    np->backend().close(pd->fd);
    pd->fd = -1;
  }
  np->free(pd);
}

PollStatus poll_prepare(PollDesc* pd, PollMode mode) {
  PollStatus st = check_error(pd, mode);
  if (st != PollStatus::kReady) return st;
  // Drop a stale notification: the syscall about to run sees the data.
  // Reads: acquire, and an exchange rather than a store, so that whatever
  // event set the slot is visible here, pd->read_closed included (see
  // unblock; NetFd::read relies on it). Writes need neither.
  if (mode == PollMode::kRead) {
    pd->rg.exchange(kPdNil, std::memory_order_acquire);
  } else {
    slot_of(pd, mode).store(kPdNil, std::memory_order_relaxed);
  }
  return PollStatus::kReady;
}

bool poll_read_closed(PollDesc* pd) { return pd->read_closed.load(std::memory_order_acquire); }

PollStatus poll_wait(PollDesc* pd, PollMode mode, WaitReason why) {
  Worker* w = current_worker();
  if (w == nullptr || w->current.load(std::memory_order_relaxed) == nullptr || w->sched != pd->sched)
    return PollStatus::kNotInFiber;
  PollStatus st = check_error(pd, mode);
  if (st != PollStatus::kReady) return st;
  while (!block(pd, mode, why)) {
    // Woken by a deadline or evict, or the park was cancelled by one. A
    // deadline that was moved later meanwhile is not an error: wait again.
    st = check_error(pd, mode);
    if (st != PollStatus::kReady) return st;
  }
  return PollStatus::kReady;
}

void poll_set_deadline(PollDesc* pd, int64_t deadline_ns, PollMode mode) {
  Fiber* r = nullptr;
  Fiber* w = nullptr;
  {
    SpinGuard guard(pd->lock);
    if (pd->closing.load(std::memory_order_relaxed)) return;
    if (uint8_t(mode) & uint8_t(PollMode::kRead)) r = set_one_deadline(pd, PollMode::kRead, deadline_ns);
    if (uint8_t(mode) & uint8_t(PollMode::kWrite)) w = set_one_deadline(pd, PollMode::kWrite, deadline_ns);
  }
  ready_taken(netpoll_of(pd->sched), r, w);
}

void poll_evict(PollDesc* pd) {
  Fiber* r;
  Fiber* w;
  {
    SpinGuard guard(pd->lock);
    if (pd->closing.load(std::memory_order_relaxed)) return;
    // seq_cst store, then the slot CASes in unblock: netpoll.h's ordering.
    pd->closing.store(true, std::memory_order_seq_cst);
    r = unblock(pd->rg, Unblock::kDeadlineOrClose);
    w = unblock(pd->wg, Unblock::kDeadlineOrClose);
    TimerHeap::remove(&pd->rt);
    TimerHeap::remove(&pd->wt);
  }
  ready_taken(netpoll_of(pd->sched), r, w);
}

uint64_t poll_runtime_id() {
  Scheduler* s = current_scheduler();
  NetPoll* np = s != nullptr ? netpoll_of(s) : nullptr;
  return np != nullptr ? np->id : 0;
}

// ---- the worker's side (declared in scheduler.h) ----

void Worker::wake() {
  futex_wake(&wake_word, 1);
  // Dekker with sleep_in_netpoll: we stored wake_word, then read in_netpoll;
  // it stores in_netpoll, then reads wake_word. The fences make one of us
  // see the other: it skips the wait, or we interrupt it.
  std::atomic_thread_fence(std::memory_order_seq_cst);
  if (in_netpoll.load(std::memory_order_relaxed)) netpoll_of(sched)->backend().interrupt();
}

bool Worker::sleep_in_netpoll(int64_t deadline, ReadyBatch& io) {
  NetPoll* np = netpoll_of(sched);
  if (np == nullptr || !np->has_waiters() || !np->try_become_blocked_poller()) return false;
  in_netpoll.store(true, std::memory_order_relaxed);
  std::atomic_thread_fence(std::memory_order_seq_cst);  // see wake()
  while (wake_word.load(std::memory_order_acquire) == 0 && io.n == 0) {
    if (deadline != kNever && now_ns() >= deadline) break;
    np->poll(deadline, io);
  }
  in_netpoll.store(false, std::memory_order_relaxed);
  np->stop_being_blocked_poller();
  return true;
}

int Worker::queue_polled(ReadyBatch& io, PolledWhere where) {
  if (io.n == 0) return 0;
  if (where == PolledWhere::kBehindInjector) {
    sched->injector.push_batch(io.fibers, std::size_t(io.n));
  } else {
    for (int i = 0; i < io.n; ++i) push_local(io.fibers[i], RunNext::kNo);
  }
  // After publishing them: the deadlock check must never see them nowhere.
  netpoll_of(sched)->remove_waiters(io.n);
  // We run one ourselves (from the injector too: the fairness turn takes
  // from it next); the rest are for whoever is idle (Go's injectglist).
  if (io.n > 1) sched->wake_idle_worker();
  int n = io.n;
  io.n = 0;
  return n;
}

bool Worker::poll_network(PollWhen when, PolledWhere where) {
  NetPoll* np = netpoll_of(sched);
  if (np == nullptr || !np->has_waiters()) return false;
  if (when == PollWhen::kUnlessSomeoneBlocked && np->someone_blocked_in_poll()) return false;
  ReadyBatch io;
  np->poll(0, io);
  return queue_polled(io, where) > 0;
}

}  // namespace gort::detail
