// dumb_coro -- C++20 stackless coroutines on one epoll loop.
//
// Each connection is a coroutine written like the blocking loop
// (blocking_connection.cpp): read, run the requests, write the replies --
// but where a blocking server would block, it co_awaits the Loop instead:
//
//   co_await loop.readable(fd)     suspend until fd is readable
//   co_await loop.writable(fd)     suspend until fd is writable
//   co_await loop.sleep(fd, ms)    suspend on the timer heap (WAIT), or until
//                                  fd hangs up (the peer reset): false then
//   co_await loop.yield()          go to the back of the ready queue
//
// Readiness uses EPOLLONESHOT: each await re-arms the fd with the handle to
// resume as epoll data, so an event resumes exactly the coroutine waiting for
// it and a fd nobody waits on raises nothing.  The coroutine frame (on the
// heap, ~17 KiB with its read buffer) is the whole per-connection state: no
// hand-written state machine.  Being stackless, a coroutine runs on the loop
// thread's stack while resumed, so BURN runs inline there (8 MiB stack) and
// stalls the loop like in dumb_epoll.  A coroutine yields after
// kBurstLimit reads or writes in a row, so a fast client cannot monopolise
// the loop.  Breaks at: CPU-bound requests (one core); and a coroutine
// cannot block inside a library that does not know the Loop.
//
// Rejected: a Task<T> type with symmetric transfer for nested coroutines --
// one coroutine per connection with plain helper awaitables is enough here.

#include <array>
#include <cerrno>
#include <coroutine>
#include <cstdio>
#include <deque>
#include <exception>
#include <memory>

#include <sys/epoll.h>
#include <unistd.h>

#include "common/server_main.h"
#include "dumb/protocol.h"
#include "dumb/timer_heap.h"

namespace {

using dumb::Clock;

constexpr int kBurstLimit = 32;

// A coroutine that starts at once and frees itself when it finishes.
struct Detached {
  struct promise_type {
    Detached get_return_object() noexcept { return {}; }
    std::suspend_never initial_suspend() noexcept { return {}; }
    std::suspend_never final_suspend() noexcept { return {}; }
    void return_void() noexcept {}
    void unhandled_exception() noexcept { std::terminate(); }
  };
};

class Loop {
 public:
  Loop() : epoll_fd_(epoll_create1(EPOLL_CLOEXEC)) {}
  ~Loop() { close(epoll_fd_); }

  // Registers fd (disarmed) before anyone awaits it.
  void add(int fd) {
    epoll_event ev{};
    ev.events = EPOLLONESHOT;
    epoll_ctl(epoll_fd_, EPOLL_CTL_ADD, fd, &ev);
  }

  struct FdAwaiter {
    Loop& loop;
    int fd;
    std::uint32_t events;
    bool await_ready() const noexcept { return false; }
    void await_suspend(std::coroutine_handle<> h) const noexcept {
      epoll_event ev{};
      ev.events = events | EPOLLONESHOT;
      ev.data.ptr = h.address();
      epoll_ctl(loop.epoll_fd_, EPOLL_CTL_MOD, fd, &ev);
    }
    void await_resume() const noexcept {}
  };
  FdAwaiter readable(int fd) { return {*this, fd, EPOLLIN}; }
  FdAwaiter writable(int fd) { return {*this, fd, EPOLLOUT}; }

  // A sleeping coroutine, shared by the timer heap and its awaiter: whichever
  // of the timer and a hang-up of the fd comes first resumes it; the other
  // then finds it cancelled (timer) or disarmed (fd).
  struct Sleeper {
    std::coroutine_handle<> handle;
    bool timer_fired = false;  // the deadline resumed it
    bool cancelled = false;    // the fd resumed it: the timer entry is stale
  };

  // Sleeps until the deadline, or until fd hangs up or fails (a reset):
  // EPOLLHUP and EPOLLERR are reported even with no events asked for, so
  // pipelined bytes and a half-close (still owed its DONE) do not wake it.
  // Returns false if the fd did.
  struct SleepAwaiter {
    Loop& loop;
    int fd;
    Clock::time_point deadline;
    std::shared_ptr<Sleeper> sleeper = std::make_shared<Sleeper>();
    bool await_ready() const noexcept { return deadline <= Clock::now(); }
    void await_suspend(std::coroutine_handle<> h) {
      sleeper->handle = h;
      loop.timers_.push(deadline, sleeper);
      loop.arm(fd, EPOLLONESHOT, h.address());
    }
    bool await_resume() {
      if (sleeper->handle && !sleeper->timer_fired) {
        sleeper->cancelled = true;
        return false;
      }
      if (sleeper->handle) loop.arm(fd, EPOLLONESHOT, nullptr);  // the loop ignores a null handle
      return true;
    }
  };
  SleepAwaiter sleep(int fd, std::uint32_t ms) { return {*this, fd, Clock::now() + std::chrono::milliseconds(ms)}; }

  struct YieldAwaiter {
    Loop& loop;
    bool await_ready() const noexcept { return false; }
    void await_suspend(std::coroutine_handle<> h) const { loop.ready_.push_back(h); }
    void await_resume() const noexcept {}
  };
  YieldAwaiter yield() { return {*this}; }

  // Runs until done() is true.
  template <class Done>
  void run(Done done) {
    std::array<epoll_event, 128> events;
    while (!done()) {
      int timeout = ready_.empty() ? timers_.timeout_ms(Clock::now()) : 0;
      int n = epoll_wait(epoll_fd_, events.data(), static_cast<int>(events.size()), timeout);
      if (n < 0 && errno != EINTR) {
        std::perror("epoll_wait");
        return;
      }
      for (int i = 0; i < n; ++i)
        if (events[i].data.ptr) std::coroutine_handle<>::from_address(events[i].data.ptr).resume();
      Clock::time_point now = Clock::now();
      while (auto sleeper = timers_.pop_due(now)) {
        if ((*sleeper)->cancelled) continue;
        (*sleeper)->timer_fired = true;
        (*sleeper)->handle.resume();
      }
      for (std::size_t i = ready_.size(); i > 0; --i) {  // only those queued before this pass
        auto h = ready_.front();
        ready_.pop_front();
        h.resume();
      }
    }
  }

 private:
  void arm(int fd, std::uint32_t events, void* handle) {
    epoll_event ev{};
    ev.events = events;
    ev.data.ptr = handle;
    epoll_ctl(epoll_fd_, EPOLL_CTL_MOD, fd, &ev);
  }

  int epoll_fd_;
  dumb::TimerHeap<std::shared_ptr<Sleeper>> timers_;  // sleeping coroutines
  std::deque<std::coroutine_handle<>> ready_;         // yielded coroutines
};

struct Counters {
  int connections = 0;    // connection coroutines alive
  bool accepting = true;  // the accept coroutine is alive
};

Detached serve_connection(Loop& loop, common::ServerContext& ctx, Counters& counters, int fd) {
  ++counters.connections;
  ctx.track(fd);
  loop.add(fd);
  dumb::Session session;
  std::array<char, 16384> buf;
  bool open = true;
  int burst = 0;
  auto pace = [&] { return ++burst % kBurstLimit == 0; };  // time to yield?
  while (open && !ctx.stopping()) {
    ssize_t n = read(fd, buf.data(), buf.size());
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
      co_await loop.readable(fd);
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    if (pace()) co_await loop.yield();
    std::string_view in(buf.data(), static_cast<std::size_t>(n));
    while (open && !ctx.stopping()) {
      auto action = session.next(in);  // a BURN runs here, on the loop thread's stack
      if (!action) break;
      std::string_view reply = action->reply;
      dumb::StreamCursor stream(0);
      bool streaming = action->kind == dumb::Action::Kind::kStream;
      if (action->kind == dumb::Action::Kind::kWait) {
        if (!co_await loop.sleep(fd, action->wait_ms)) {
          open = false;  // the peer reset: nobody is there to read the DONE
          break;
        }
        reply = dumb::kDone;
      } else if (streaming) {
        stream = dumb::StreamCursor(action->stream_bytes);
      }
      while (open) {
        std::string_view chunk = streaming ? stream.peek() : reply;
        if (chunk.empty()) break;
        ssize_t w = write(fd, chunk.data(), chunk.size());
        if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
          co_await loop.writable(fd);
        } else if (w < 0 && errno != EINTR) {
          open = false;
        } else if (w > 0) {
          streaming ? stream.consume(static_cast<std::size_t>(w)) : reply.remove_prefix(static_cast<std::size_t>(w));
          if (pace()) co_await loop.yield();
        }
      }
    }
  }
  ctx.untrack_and_close(fd);  // close() also takes it out of the epoll set
  --counters.connections;
}

Detached accept_connections(Loop& loop, common::ServerContext& ctx, Counters& counters) {
  loop.add(ctx.listener());
  for (;;) {
    int fd = ctx.accept_connection(/*nonblocking=*/true);
    if (fd >= 0) {
      serve_connection(loop, ctx, counters, fd);  // runs until its first suspension
    } else if (errno == EINVAL || ctx.stopping()) {
      break;  // the stop protocol shut the listener down: it hung up, which woke us
    } else {
      co_await loop.readable(ctx.listener());
    }
  }
  counters.accepting = false;
}

void serve(common::ServerContext& ctx) {
  Loop loop;
  Counters counters;
  accept_connections(loop, ctx, counters);
  loop.run([&] { return !counters.accepting && counters.connections == 0; });
}

}  // namespace

int main(int argc, char** argv) { return common::server_main(argc, argv, "dumb_coro", serve); }
