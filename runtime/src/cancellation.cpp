// cancellation.cpp: gort::Context, Go's context package (include/gort/context.h).
// Not to be confused with context.h here, the fibers' machine contexts.
//
// Design
//  * A Context is a shared_ptr to an immutable-shape ContextNode (null for
//    background()). Nodes form a tree through `parent` (strong: a child
//    keeps its ancestors' values and cancelers alive). Each node knows its
//    `canceler`: itself if it can be canceled (with_cancel, with_deadline),
//    else the nearest ancestor that can, or null. done(), err() and
//    deadline() read the canceler, so a with_value node costs nothing extra
//    and a context rooted in background() without a canceler reports a nil
//    done channel and never takes a lock.
//  * A cancelable node registers with its parent's canceler, on that
//    node's `children` list (raw pointers, under the canceler's lock). The
//    list does not own the children: dropping every handle of a child
//    destroys it, and its destructor unlinks it (under the same lock). A
//    cancel takes children off the list one at a time, and for each turns
//    its raw pointer into a strong reference (weak_from_this) under the
//    lock; a child whose count already reached zero is being destroyed and
//    is skipped. So a cancel never touches a freed child, and no cycle
//    keeps a forgotten context alive (Go leaks it until the parent is
//    canceled; here it goes with its last handle).
//  * cancel(node, why), per step:
//      1. under node's lock: if err is set, return (idempotent); set err
//         (release: pairs with err()'s acquire);
//      2. close done: every select on it wakes and then reads err;
//      3. cancel each child with the same reason (step 1 makes a child
//         that registers after it see err set, and cancel itself);
//      4. run each cancel hook (gort::net's interrupters), then mark it
//         finished so its owner may return and free it;
//      5. stop the deadline timer and leave the parent's list.
//    No step holds two nodes' locks, so there is no lock order between
//    nodes; a node's lock is held only for list and flag updates.
//  * A deadline is a function timer (timer.cpp) holding a weak reference:
//    a context dropped before its deadline does not keep itself alive, and
//    ~ContextNode stops the timer.
//
// Rejected
//  * A watcher fiber per context (how user code emulated cancellation): a
//    fiber and a stack per context, and a hop through it on every cancel.
//  * done() created lazily (Go's atomic.Value): saves one channel per
//    cancelable context but puts a lock or an atomic on the path of every
//    done() call, the path select with a context runs.
#include <gort/context.h>

#include <chrono>
#include <stdexcept>
#include <thread>

#include <gort/runtime.h>
#include <gort/select.h>
#include <gort/timer.h>

#include "platform.h"

namespace gort::detail {

struct ContextNode : std::enable_shared_from_this<ContextNode> {
  // Fixed once the node is published.
  std::shared_ptr<ContextNode> parent;         // null under background()
  ContextNode* canceler = nullptr;             // this, or the nearest cancelable ancestor, or null
  int64_t deadline = kNever;                   // now_ns() clock; the earliest on the path to the root
  const void* key = nullptr;                   // with_value nodes: the key's address
  std::shared_ptr<const void> value;           // with_value nodes: the value
  std::shared_ptr<Chan<std::monostate>> done;  // cancelable nodes: closed by cancel

  // Cancelable nodes.
  Spinlock lock;
  std::atomic<ContextError> err{ContextError::kNone};        // written once, under lock
  ContextNode* first_child GORT_GUARDED_BY(lock) = nullptr;  // registered cancelable descendants
  CancelHook* hooks GORT_GUARDED_BY(lock) = nullptr;
  // with_deadline nodes: cancels at `deadline`. Under lock: it may fire
  // (and cancel reads it) before with_deadline has stored it.
  TimerCore* timer GORT_GUARDED_BY(lock) = nullptr;
  // Links on parent->canceler's `children` (under that node's lock).
  ContextNode* sibling_prev = nullptr;
  ContextNode* sibling_next = nullptr;
  bool linked = false;

  ~ContextNode();
  ContextNode* registrar() const { return parent ? parent->canceler : nullptr; }

  static Context context(std::shared_ptr<ContextNode> n) { return Context(std::move(n)); }
  static CancelFunc cancel_func(std::shared_ptr<ContextNode> n) { return CancelFunc(std::move(n)); }
  static const std::shared_ptr<ContextNode>& node_of(const Context& c) { return c.node_; }
  static const std::shared_ptr<ContextNode>& node_of(const CancelFunc& f) { return f.node_; }
};

namespace {

void unlink_child(ContextNode* parent, ContextNode* c) GORT_REQUIRES(parent->lock) {
  if (c->sibling_prev) {
    c->sibling_prev->sibling_next = c->sibling_next;
  } else {
    parent->first_child = c->sibling_next;
  }
  if (c->sibling_next) c->sibling_next->sibling_prev = c->sibling_prev;
  c->sibling_prev = c->sibling_next = nullptr;
  c->linked = false;
}

void unlink_hook(ContextNode* n, CancelHook* h) GORT_REQUIRES(n->lock) {
  if (h->prev) {
    h->prev->next = h->next;
  } else {
    n->hooks = h->next;
  }
  if (h->next) h->next->prev = h->prev;
  h->prev = h->next = nullptr;
  h->queued = false;
}

void leave_parent(ContextNode* n) {
  ContextNode* p = n->registrar();
  if (p == nullptr) return;
  SpinGuard guard(p->lock);
  if (n->linked) unlink_child(p, n);
}

void cancel(ContextNode* n, ContextError why) {
  {  // 1.
    SpinGuard guard(n->lock);
    if (n->err.load(std::memory_order_relaxed) != ContextError::kNone) return;
    // release: pairs with err()'s acquire; a fiber that sees done closed or
    // err set sees everything the canceller did before.
    n->err.store(why, std::memory_order_release);
  }
  try {
    n->done->close();  // 2. cancel closes it once (step 1)
  } catch (const ChanClosed&) {
    // The user closed done() (Go makes it receive-only); cancel must finish.
  }
  for (;;) {  // 3.
    std::shared_ptr<ContextNode> child;
    {
      SpinGuard guard(n->lock);
      ContextNode* c = n->first_child;
      if (c == nullptr) break;
      unlink_child(n, c);
      child = c->weak_from_this().lock();  // null: being destroyed, skip it
    }
    if (child) cancel(child.get(), why);
  }
  for (;;) {  // 4.
    CancelHook* h;
    {
      SpinGuard guard(n->lock);
      h = n->hooks;
      if (h == nullptr) break;
      unlink_hook(n, h);
    }
    h->run(h->arg);
    // release: pairs with remove_cancel_hook's acquire; after it the hook's
    // owner may free it.
    h->finished.store(1, std::memory_order_release);
  }
  TimerCore* timer;  // 5.
  {
    SpinGuard guard(n->lock);
    timer = n->timer;
  }
  if (timer != nullptr) timer_stop(timer);
  leave_parent(n);
}

// Registers a fresh cancelable node with its parent's canceler, or cancels
// it at once if that one is already done.
void register_with_parent(ContextNode* n) {
  ContextNode* p = n->registrar();
  if (p == nullptr) return;
  ContextError parent_err;
  {
    SpinGuard guard(p->lock);
    parent_err = p->err.load(std::memory_order_relaxed);
    if (parent_err == ContextError::kNone) {
      n->sibling_next = p->first_child;
      if (p->first_child) p->first_child->sibling_prev = n;
      p->first_child = n;
      n->linked = true;
    }
  }
  if (parent_err != ContextError::kNone) cancel(n, parent_err);
}

std::shared_ptr<ContextNode> new_cancelable(const Context& parent) {
  auto n = std::make_shared<ContextNode>();
  n->parent = ContextNode::node_of(parent);
  n->canceler = n.get();
  n->deadline = n->parent ? n->parent->deadline : kNever;
  n->done = make_chan<std::monostate>();
  return n;
}

}  // namespace

ContextNode::~ContextNode() GORT_NO_THREAD_SAFETY_ANALYSIS {  // the last reference: nobody else reads `timer`
  if (timer != nullptr) {
    timer_stop(timer);
    timer_release(timer);
  }
  if (canceler == this) leave_parent(this);
}

const void* context_value(const ContextNode* n, const void* key) {
  for (; n != nullptr; n = n->parent.get())
    if (n->key == key) return n->value.get();
  return nullptr;
}

Context context_with_value(const Context& parent, const void* key, std::shared_ptr<const void> value) {
  auto n = std::make_shared<ContextNode>();
  n->parent = ContextNode::node_of(parent);
  n->canceler = n->parent ? n->parent->canceler : nullptr;
  n->deadline = n->parent ? n->parent->deadline : kNever;
  n->key = key;
  n->value = std::move(value);
  return ContextNode::context(std::move(n));
}

bool add_cancel_hook(const Context& ctx, CancelHook* hook) {
  ContextNode* c = ctx.node_ ? ctx.node_->canceler : nullptr;
  hook->owner = nullptr;
  if (c == nullptr) return true;  // never canceled: nothing to register
  SpinGuard guard(c->lock);
  if (c->err.load(std::memory_order_relaxed) != ContextError::kNone) return false;
  hook->owner = c;
  hook->finished.store(0, std::memory_order_relaxed);
  hook->prev = nullptr;
  hook->next = c->hooks;
  if (c->hooks) c->hooks->prev = hook;
  c->hooks = hook;
  hook->queued = true;
  return true;
}

bool remove_cancel_hook(CancelHook* hook) {
  ContextNode* c = hook->owner;
  if (c == nullptr) return true;
  {
    SpinGuard guard(c->lock);
    if (hook->queued) {
      unlink_hook(c, hook);
      return true;
    }
  }
  // A cancel took it and is running it now (a few stores): wait it out,
  // since the hook lives on our stack. acquire: pairs with cancel's store.
  while (hook->finished.load(std::memory_order_acquire) == 0) gort::yield();
  return false;
}

ContextError sleep_until_ns(const Context& ctx, int64_t deadline) {
  const auto& done = ctx.done();
  if (done == nullptr) {
    sleep_until_ns(deadline);
    return ContextError::kNone;
  }
  if (ContextError e = ctx.err(); e != ContextError::kNone) return e;
  int64_t now = now_ns();
  if (deadline <= now) return ContextError::kNone;
  if (worker_count() == 0) {
    // No runtime, hence no timers: a thread polls in short naps.
    while (ctx.err() == ContextError::kNone && (now = now_ns()) < deadline)
      std::this_thread::sleep_for(std::chrono::nanoseconds(std::min<int64_t>(deadline - now, 1'000'000)));
    return now_ns() >= deadline ? ContextError::kNone : ctx.err();
  }
  Timer t(std::chrono::nanoseconds(deadline - now));
  int chosen = gort::select(on_recv(done), on_recv(t.chan()));
  return chosen == 0 ? ctx.err() : ContextError::kNone;
}

}  // namespace gort::detail

namespace gort {

using detail::ContextNode;

const char* to_string(ContextError e) {
  switch (e) {
    case ContextError::kNone: return "";
    case ContextError::kCanceled: return "context canceled";
    case ContextError::kDeadlineExceeded: return "context deadline exceeded";
  }
  return "?";
}

const std::shared_ptr<Chan<std::monostate>>& Context::done() const {
  static const std::shared_ptr<Chan<std::monostate>> nil;
  ContextNode* c = node_ ? node_->canceler : nullptr;
  return c != nullptr ? c->done : nil;
}

ContextError Context::err() const {
  ContextNode* c = node_ ? node_->canceler : nullptr;
  // acquire: pairs with cancel's release store.
  return c != nullptr ? c->err.load(std::memory_order_acquire) : ContextError::kNone;
}

std::optional<Clock::time_point> Context::deadline() const {
  if (!node_ || node_->deadline == detail::kNever) return std::nullopt;
  return Clock::time_point(std::chrono::duration_cast<Clock::duration>(std::chrono::nanoseconds(node_->deadline)));
}

void CancelFunc::operator()() const {
  if (node_) detail::cancel(node_.get(), ContextError::kCanceled);
}

std::pair<Context, CancelFunc> with_cancel(const Context& parent) {
  auto n = detail::new_cancelable(parent);
  detail::register_with_parent(n.get());
  return {ContextNode::context(n), ContextNode::cancel_func(n)};
}

std::pair<Context, CancelFunc> with_deadline(const Context& parent, Clock::time_point t) {
  int64_t when = detail::to_monotonic_ns(t);
  auto n = detail::new_cancelable(parent);
  if (when >= n->deadline) {  // the parent's comes first: Go returns WithCancel
    detail::register_with_parent(n.get());
    return {ContextNode::context(n), ContextNode::cancel_func(n)};
  }
  n->deadline = when;
  int64_t now = detail::now_ns();
  if (when > now) {
    // The timer holds only a weak reference (see the top of this file); it
    // may fire before `timer` is stored, hence the lock.
    detail::TimerCore* timer = detail::timer_start(when - now, 0, [weak = std::weak_ptr<ContextNode>(n)] {
      if (auto strong = weak.lock()) detail::cancel(strong.get(), ContextError::kDeadlineExceeded);
    });
    detail::SpinGuard guard(n->lock);
    n->timer = timer;
  }
  detail::register_with_parent(n.get());
  if (when <= now) detail::cancel(n.get(), ContextError::kDeadlineExceeded);
  return {ContextNode::context(n), ContextNode::cancel_func(n)};
}

}  // namespace gort
