// debug.cpp: the fiber dump (<gort/debug.h>) and the names of wait reasons.
//
// Design
//  * The runtime keeps no list of its fibers (spawn and exit would pay for
//    one). Every fiber's control block is a record of the FiberPool, all
//    carved from one reservation (fiber_pool.h), so the dump walks the
//    records carved so far and reads each, as tools/gdb/gort.py does from
//    outside. A record whose id is 0 (never used, or its page given back by
//    the scavenger, which zeroes it) or whose state is kDead (its fiber
//    returned, or spawn_abort gave it up) is not a fiber.
//  * The workers keep running: the dump does not stop the world. Each
//    block is copied field by field (read_block), and then formatted from
//    the copy.
//  * Under each parked fiber, its stack (StackPrinter): copied and checked
//    against a second read of the block, then unwound from the copy
//    (backtrace.cpp says why that is safe); a stack printed once is named
//    by fiber id after that.
//
// What a concurrent reader may see, and why it is safe
//  * The memory is always there: the records' reservation stays mapped
//    until the FiberPool is destroyed, when gort::run returns, and records
//    up to FiberPool::carved() (release/acquire) are committed or read as
//    zeros; a given-back page reads as zeros too: id 0, skipped. A parked
//    fiber's stack (copied for its backtrace) lies in a slab, mapped until
//    the StackPool is destroyed. So no read can fault, as long as gort::run
//    does not return meanwhile (debug.h).
//  * A block may change while it is copied: a fiber parks, is woken,
//    starts, returns, or its record is handed to a new fiber (spawn_prepare
//    constructs the block again with plain stores). Every field is an
//    aligned word or byte read with one load of its width (racy_load), so
//    each value read is one that was stored, never a torn mix; but the fields may come
//    from different moments: the new state with the previous wait's
//    reason, a new id with the old name (names are static strings, so the
//    pointer is always readable). At worst one line describes a fiber as it
//    was a moment before or after, or a fiber that just returned is listed
//    or one just spawned missing: what any dump of a running program
//    shows. Go avoids this by stopping the world for its traceback; the
//    dump costs the running fibers nothing instead.
//  * Those loads race, in the language's terms, with the fibers' own
//    stores (spawn_prepare's re-construction of a block is plain stores,
//    and no atomic load can make a plain store race-free). They are
//    volatile loads in a function the sanitizers do not instrument: each is
//    one machine load of the field's width, which is all the argument above
//    needs, and ThreadSanitizer is spared a report of a race that is meant.
//  * Elapsed wait times come from the cycle counter (platform.h:
//    cpu_ticks): the park path stores a raw count, and the dump scales it
//    by the rate measured between the scheduler's start-up pair (ticks, ns)
//    and a pair it reads now. The wait began after start-up, so its length
//    is at most that interval and the rate's error scales it down.
//
// SIGQUIT (Go's): the dump on stderr, then exit status 2
//  * run_main installs the handler only if the program has not installed
//    one of its own (the disposition is SIG_DFL, or an inherited SIG_IGN,
//    when the runtime starts),
//    and not at all under GORT_TRACEBACK=none; it puts the old disposition
//    back when the runtime stops.
//  * The handler only sets an atomic flag (g_quit_requested, lock-free, so
//    async-signal-safe). The dump allocates and writes through stdio,
//    neither of which a signal handler may do (the signal may arrive inside
//    malloc or inside a stdio call holding its lock), so the monitor
//    thread makes it: the monitor wakes at least every kDeepSleepNs
//    (monitor.h) whatever the workers do, and looks at the flag each time.
//    No futex wake from the handler: the monitor's wake word belongs to a
//    Monitor that run_main may be destroying as the signal arrives, and the
//    flag is static.
//  * Rejected: dumping inside the handler with only write(2) and no
//    allocation (the text is built in a std::string); a self-pipe read by
//    a thread of its own (one more thread per runtime, which the deadlock
//    check would have to count, for a latency nobody notices).
//
// Rejected
//  * A registry of live fibers (a list, or a counter per wait reason):
//    a locked or atomic write on every spawn, exit or park, for a dump
//    made once in a long while.
//  * Reading a clock on every park: a vDSO call on the park path, where
//    the cycle counter is one instruction.
#include <gort/debug.h>
#include <gort/detail/preempt.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cinttypes>
#include <cstdarg>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <memory>
#include <typeinfo>
#include <unordered_map>
#include <vector>

#include <cxxabi.h>

#include "backtrace.h"
#include "scheduler.h"

namespace gort::detail {

const char* wait_reason_name(WaitReason r) {
  switch (r) {
    case WaitReason::kNone: return "unknown";
    case WaitReason::kChanSend: return "chan send";
    case WaitReason::kChanReceive: return "chan receive";
    case WaitReason::kChanSendNil: return "chan send (nil chan)";
    case WaitReason::kChanReceiveNil: return "chan receive (nil chan)";
    case WaitReason::kSelect: return "select";
    case WaitReason::kSelectNoCases: return "select (no cases)";
    case WaitReason::kSleep: return "sleep";
    case WaitReason::kMutex: return "mutex";
    case WaitReason::kCondVar: return "condvar";
    case WaitReason::kWaitGroup: return "waitgroup";
    case WaitReason::kIoRead: return "I/O read";
    case WaitReason::kIoWrite: return "I/O write";
    case WaitReason::kAccept: return "accept";
    case WaitReason::kConnect: return "connect";
    case WaitReason::kBlockingCall: return "blocking call";
  }
  return "unknown";
}

namespace {

// One fiber as read by the dump.
struct FiberView {
  uint64_t id;
  const char* name;
  FiberState state;
  WaitReason why;
  int32_t fd;
  uint64_t since;     // cpu_ticks()
  uintptr_t ctx;      // saved stack pointer, while not running
  const char* block;  // where the block was read
  uintptr_t top;      // the top of its stack; 0 while it has none (not yet run)
};

// One load of a word or byte that another thread may be writing: a
// volatile access, which the compiler emits as exactly one load of that
// width, and which, aligned, the CPU performs as one access (so the value
// is one that was stored, never torn). Not an atomic builtin: ThreadSanitizer
// instruments atomics even in functions excluded from its instrumentation,
// and would then report the plain stores of spawn_prepare's re-construction.
template <class T>
__attribute__((always_inline, no_sanitize("address", "thread"))) inline T racy_load(const void* p) {
  return *static_cast<const volatile T*>(p);
}

}  // namespace

// A running fiber's id and name, read as racily as read_block reads (the
// fiber may return and its block be reused meanwhile; scheduler.h). Not
// inlined: an always-inline racy_load in an instrumented caller would be
// instrumented.
__attribute__((noinline, no_sanitize("address", "thread"))) uint64_t racy_id(const Fiber* f) {
  return racy_load<uint64_t>(&f->id);
}
__attribute__((noinline, no_sanitize("address", "thread"))) const char* racy_name(const Fiber* f) {
  return racy_load<const char*>(&f->name);
}

namespace {

// Copies the block at `block`; false if it is not a live fiber. Each field
// is one racy_load (see "What a concurrent reader may see" above); the
// std::atomic fields are read through their value's address (std::atomic<T>
// holds exactly a T; the enums are read as their uint8_t).
__attribute__((no_sanitize("address", "thread"))) bool read_block(const char* block, FiberView* out) {
  const auto* f = reinterpret_cast<const Fiber*>(block);
  out->block = block;
  // 0 while no stack is bound (a fiber that has not run yet).
  out->top = racy_load<uintptr_t>(&f->stack.base) + racy_load<std::size_t>(&f->stack.size);
  out->id = racy_load<uint64_t>(&f->id);
  if (out->id == 0) return false;
  out->state = FiberState(racy_load<uint8_t>(&f->state));
  if (out->state == FiberState::kDead || uint8_t(out->state) > uint8_t(FiberState::kDead)) return false;
  out->name = racy_load<const char*>(&f->name);
  out->why = WaitReason(racy_load<uint8_t>(&f->wait_reason));
  out->fd = racy_load<int32_t>(&f->wait_fd);
  out->since = racy_load<uint64_t>(&f->wait_since);
  out->ctx = racy_load<uintptr_t>(&f->ctx);
  return true;
}

// Calls visit(view) for every live fiber, in record order.
template <class Visit>
void for_each_live_fiber(Scheduler* s, Visit&& visit) {
  const FiberPool& pool = s->fiber_pool;
  for (std::size_t i = 0, n = pool.carved(); i < n; ++i) {
    FiberView v;
    if (read_block(pool.base() + i * kFiberRecordBytes, &v)) visit(v);
  }
}

std::vector<FiberView> live_fibers_of(Scheduler* s) {
  std::vector<FiberView> out;
  for_each_live_fiber(s, [&](const FiberView& v) { out.push_back(v); });
  std::sort(out.begin(), out.end(), [](const FiberView& a, const FiberView& b) { return a.id < b.id; });
  return out;
}

class Text {
 public:
  explicit Text(std::string& out) : out_(out) {}
  __attribute__((format(printf, 2, 3))) void append(const char* fmt, ...) {
    char buf[256];
    va_list ap;
    va_start(ap, fmt);
    int n = std::vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    if (n > 0) out_.append(buf, std::min(std::size_t(n), sizeof buf - 1));
  }

 private:
  std::string& out_;
};

// Elapsed time since `since` (cycles), for the dump: see the header comment.
class TickClock {
 public:
  explicit TickClock(const Scheduler* s) : now_ticks_(cpu_ticks()) {
    int64_t ns = now_ns() - s->start_ns;
    uint64_t ticks = now_ticks_ - s->start_ticks;
    ns_per_tick_ = ticks > 0 && ns > 0 ? double(ns) / double(ticks) : 0.0;
  }
  int64_t elapsed_ns(uint64_t since) const {
    if (since == 0 || since >= now_ticks_) return 0;  // another CPU's counter may run slightly ahead
    return int64_t(double(now_ticks_ - since) * ns_per_tick_);
  }

 private:
  uint64_t now_ticks_;
  double ns_per_tick_;
};

void append_duration(Text& t, int64_t ns) {
  int64_t ms = ns / 1'000'000;
  if (ms < 10'000) {
    t.append("%" PRId64 " ms", ms);
  } else if (ms < 600'000) {
    t.append("%" PRId64 " s", ms / 1000);
  } else {
    t.append("%" PRId64 " min", ms / 60'000);
  }
}

void append_workers(Text& t, Scheduler* s) {
  for (int i = 0, n = s->slot_count(); i < n; ++i) {
    Worker* w = s->worker_at(i);
    t.append("worker %d%s: ", i, w->kind == Worker::Kind::kSpare ? " (spare)" : "");
    // acquire: pairs with the owner's release store of `current`, so the
    // id, written before the fiber was first queued, is visible. The fiber
    // may return and its block be reused meanwhile: racy_id.
    if (Fiber* f = w->current.load(std::memory_order_acquire)) {
      t.append("running fiber %" PRIu64 "%s\n", racy_id(f), w->stuck.load(std::memory_order_relaxed) ? ", stuck" : "");
    } else if (w->parked_until.load(std::memory_order_relaxed) != -1) {
      t.append("idle\n");
    } else {
      t.append("no fiber\n");  // in its schedule loop, or a spare waiting in the pool
    }
  }
}

// " 127.0.0.1:8080->127.0.0.1:40312" for a connected TCP socket, the local
// address alone for a listener, nothing for anything else (gort::net's
// connections, named by address as Go's net errors name them). Asked of
// the kernel now: the descriptor may have been closed and reused since the
// fiber parked, and then the line shows the new owner's addresses, one
// more way in which a dump of a running program is a snapshot.
void append_socket_addresses(Text& t, int fd) {
  auto format = [](const sockaddr_storage& a, char* out, std::size_t size) {
    char host[INET6_ADDRSTRLEN] = "";
    if (a.ss_family == AF_INET) {
      const auto& in = reinterpret_cast<const sockaddr_in&>(a);
      inet_ntop(AF_INET, &in.sin_addr, host, sizeof host);
      std::snprintf(out, size, "%s:%u", host, unsigned(ntohs(in.sin_port)));
    } else {
      const auto& in6 = reinterpret_cast<const sockaddr_in6&>(a);
      inet_ntop(AF_INET6, &in6.sin6_addr, host, sizeof host);
      std::snprintf(out, size, "[%s]:%u", host, unsigned(ntohs(in6.sin6_port)));
    }
  };
  sockaddr_storage local{}, peer{};
  socklen_t local_len = sizeof local, peer_len = sizeof peer;
  if (fd < 0 || getsockname(fd, reinterpret_cast<sockaddr*>(&local), &local_len) != 0) return;
  if (local.ss_family != AF_INET && local.ss_family != AF_INET6) return;
  char text[INET6_ADDRSTRLEN + 16];
  format(local, text, sizeof text);
  t.append(" %s", text);
  if (getpeername(fd, reinterpret_cast<sockaddr*>(&peer), &peer_len) == 0 && peer.ss_family == local.ss_family) {
    format(peer, text, sizeof text);
    t.append("->%s", text);
  }
}

void append_fiber(Text& t, const FiberView& v, const TickClock& clock) {
  t.append("fiber %" PRIu64, v.id);
  if (v.name != nullptr) t.append(" \"%s\"", v.name);
  switch (v.state) {
    case FiberState::kRunnable: t.append(" [runnable]\n"); return;
    case FiberState::kRunning: t.append(" [running]\n"); return;
    case FiberState::kParked: break;
    case FiberState::kDead: return;  // not listed (read_block)
  }
  t.append(" [%s", wait_reason_name(v.why));
  if (waits_on_fd(v.why)) {
    t.append(" fd %d", int(v.fd));
    append_socket_addresses(t, int(v.fd));
  }
  t.append(", ");
  append_duration(t, clock.elapsed_ns(v.since));
  t.append("]\n");
}

// Whether two reads of a block saw the same parked wait: the park stamp
// is the sequence number of backtrace.cpp's sequence-lock read.
bool same_wait(const FiberView& a, const FiberView& b) {
  return a.id == b.id && a.state == b.state && a.since == b.since && a.ctx == b.ctx && a.top == b.top;
}

// The backtraces of a dump: one stack copy reused for every fiber, names
// looked up once per address, and the first fiber seen with each printed
// stack, so that fibers parked the same way print it once.
class StackPrinter {
 public:
  explicit StackPrinter(Scheduler* s) : all_(traceback_shows_runtime()) {
    StackPool& pool = s->stack_pool;
    for (std::size_t i = 0, n = pool.slab_count(); i < n; ++i) {
      StackPool::SlabSpan slab = pool.slab(i);
      uintptr_t base = uintptr_t(slab.base);
      slabs_.emplace_back(base, base + slab.stack_size * std::size_t(slab.count));
    }
    std::sort(slabs_.begin(), slabs_.end());
  }

  // A parked fiber's frames, unwound from a copy of its stack taken while
  // it stayed in the wait `v` was read in (backtrace.cpp).
  void append(std::string& out, const FiberView& v) {
    constexpr std::size_t kMaxCopy = 64 * 1024;  // the innermost part; deeper frames are cut
    FiberView before, after;
    bool copied = read_block(v.block, &before) && same_wait(v, before) && v.top != 0 &&
                  copy_stack(v.ctx, v.top, kMaxCopy, &copy_);
    // seq_cst: the reads of the copy above must not pass the reads below.
    std::atomic_thread_fence(std::memory_order_seq_cst);
    if (!copied || !read_block(v.block, &after) || !same_wait(v, after)) {
      out += "    (woke while the dump was made: no stack)\n";
      return;
    }
    bool cut = false;
    int n = unwind_suspended(copy_, slabs_, pcs_, kMaxFrames, &cut);
    if (n == 0) {
      out += "    (no stack: it could not be unwound)\n";
      return;
    }
    // Fibers whose printed frames are the same print them once: the
    // runtime's hidden frames may differ (which path parked it) where the
    // reader would see no difference.
    std::string frames;
    append_frames(frames, sym_, pcs_, n, cut, all_);
    auto [it, first] = seen_.emplace(std::move(frames), v.id);
    if (first) {
      out += it->first;
    } else {
      Text(out).append("    same stack as fiber %" PRIu64 "\n", it->second);
    }
  }

 private:
  bool all_;
  AddressRanges slabs_;  // every stack, for the unwinder to keep out of
  Symbolizer sym_;
  StackCopy copy_;
  uintptr_t pcs_[kMaxFrames];
  std::unordered_map<std::string, uint64_t> seen_;
};

}  // namespace

void count_fibers(Scheduler* s, FiberCensus* out) {
  for_each_live_fiber(s, [&](const FiberView& v) {
    switch (v.state) {
      case FiberState::kRunnable: ++out->runnable; break;
      case FiberState::kRunning: ++out->running; break;
      case FiberState::kParked:
        if (std::size_t(v.why) < kWaitReasons) ++out->parked_by_reason[std::size_t(v.why)];
        break;
      case FiberState::kDead: break;  // not listed (read_block)
    }
  });
}

void append_fiber_dump(Scheduler* s, std::string& out, std::size_t max_fibers) {
  Text t(out);
  TickClock clock(s);
  std::vector<FiberView> fibers = live_fibers_of(s);
  t.append("gort: %d workers, %d spares, %zu fibers\n", s->nworkers, s->slot_count() - s->nworkers, fibers.size());
  append_workers(t, s);
  std::size_t shown = std::min(fibers.size(), max_fibers);
  StackPrinter stacks(s);
  for (std::size_t i = 0; i < shown; ++i) {
    append_fiber(t, fibers[i], clock);
    if (fibers[i].state == FiberState::kParked) stacks.append(out, fibers[i]);
    // A dump made by a fiber (fibers_text) takes its time slice like any
    // long loop; elsewhere (the monitor, the deadlock report) a no-op.
    if (i % 256 == 255) preemption_point();
  }
  if (shown < fibers.size()) t.append("... and %zu more fibers\n", fibers.size() - shown);
}

// ---- SIGQUIT ----

namespace {

std::atomic<bool> g_quit_requested{false};
struct sigaction g_previous_quit;  // the disposition run_main replaced (when g_quit_installed)
bool g_quit_installed = false;     // run_main's thread only

// relaxed: the monitor needs only the flag; nothing else is handed over.
void on_sigquit(int) { g_quit_requested.store(true, std::memory_order_relaxed); }

}  // namespace

void install_quit_handler() {
  const char* traceback = std::getenv("GORT_TRACEBACK");
  if (traceback != nullptr && std::strcmp(traceback, "none") == 0) return;
  struct sigaction current;
  if (sigaction(SIGQUIT, nullptr, &current) != 0) return;
  // SIG_IGN is not the program's choice but, usually, its shell's: a
  // non-interactive shell starts background jobs with SIGQUIT ignored.
  // Go installs its handler over an inherited SIG_IGN too.
  bool program_has_one =
      (current.sa_flags & SA_SIGINFO) != 0 || (current.sa_handler != SIG_DFL && current.sa_handler != SIG_IGN);
  if (program_has_one) return;
  struct sigaction ours {};
  ours.sa_handler = on_sigquit;
  sigemptyset(&ours.sa_mask);
  ours.sa_flags = SA_RESTART;
  g_quit_requested.store(false, std::memory_order_relaxed);
  g_quit_installed = sigaction(SIGQUIT, &ours, &g_previous_quit) == 0;
}

void remove_quit_handler() {
  if (!g_quit_installed) return;
  sigaction(SIGQUIT, &g_previous_quit, nullptr);
  g_quit_installed = false;
}

void dump_if_quit_requested(Scheduler* s) {
  if (__builtin_expect(!g_quit_requested.load(std::memory_order_relaxed), 1)) return;
  std::string text = "SIGQUIT: quit\n\n";
  append_fiber_dump(s, text, SIZE_MAX);
  std::fflush(nullptr);
  std::fwrite(text.data(), 1, text.size(), stderr);
  std::fflush(stderr);
  _exit(2);
}

// ---- An exception that escapes a fiber ----

namespace {

std::terminate_handler g_previous_terminate = nullptr;
bool g_terminate_installed = false;  // run_main's thread only

// "std::runtime_error: boom" for the exception being handled; its type
// alone for one that is not a std::exception.
std::string describe_current_exception() {
  std::exception_ptr e = std::current_exception();
  if (!e) return "std::terminate called without an exception";
  try {
    std::rethrow_exception(e);
  } catch (const std::exception& ex) {
    return demangle(typeid(ex).name()) + ": " + ex.what();
  } catch (...) {
    const std::type_info* t = abi::__cxa_current_exception_type();
    return (t != nullptr ? demangle(t->name()) : std::string("unknown type")) + " (not a std::exception)";
  }
}

// The frames of the throw: this thread's stack without the frames of
// std::terminate and of the throw itself (everything up to __cxa_throw,
// or to the call of std::terminate for an exception that met a noexcept
// function, which unwinds down to it first).
std::string throw_backtrace() {
  uintptr_t pcs[kMaxFrames];
  int n = unwind_here(pcs, kMaxFrames);
  Symbolizer sym;
  int first = 0;
  for (int i = 0; i < n; ++i) {
    for (const Symbolizer::Call& c : sym.frame(pcs[i]).calls) {
      const std::string& f = c.function;
      if (f == "__cxa_throw" || f == "__cxa_rethrow" || f.starts_with("std::rethrow_exception") ||
          f.starts_with("std::terminate") || f.starts_with("__cxa_call_terminate") ||
          f.starts_with("__cxxabiv1::__terminate"))
        first = i + 1;
    }
  }
  std::string out;
  append_frames(out, sym, pcs + first, n - first, n == kMaxFrames, traceback_shows_runtime());
  return out;
}

// The runtime's std::terminate handler: on a fiber, Go's report of a
// panic (the exception, the fiber, the stack where it was thrown) and exit
// status 2; anywhere else, the previous handler.
[[noreturn]] void on_terminate() {
  Worker* w = current_worker();
  Fiber* f = w != nullptr ? w->current.load(std::memory_order_relaxed) : nullptr;
  if (f == nullptr) {
    if (g_previous_terminate != nullptr) g_previous_terminate();
    std::abort();
  }
  std::string fiber;  // 7 "name", as the dump names it
  Text(fiber).append("%" PRIu64, f->id);
  if (f->name != nullptr) Text(fiber).append(" \"%s\"", f->name);
  std::string detail = "fiber " + fiber + " [running]\n" + throw_backtrace();
  fatal_with(detail.c_str(), "unhandled exception in fiber %s: %s", fiber.c_str(), describe_current_exception().c_str());
}

}  // namespace

void install_terminate_handler() {
  std::terminate_handler current = std::get_terminate();
  if (current != __gnu_cxx::__verbose_terminate_handler && current != nullptr) return;  // the program's own
  g_previous_terminate = std::set_terminate(on_terminate);
  g_terminate_installed = true;
}

void remove_terminate_handler() {
  if (!g_terminate_installed) return;
  std::set_terminate(g_previous_terminate);
  g_terminate_installed = false;
}

}  // namespace gort::detail

namespace gort::debug {

std::string fibers_text() {
  std::string out;
  detail::Scheduler* s = detail::current_scheduler();
  if (s == nullptr) return "gort: no runtime is running\n";
  detail::append_fiber_dump(s, out, SIZE_MAX);
  return out;
}

void write_fibers(std::FILE* out) {
  std::string text = fibers_text();
  std::fwrite(text.data(), 1, text.size(), out);
  std::fflush(out);
}

}  // namespace gort::debug
