// dumb_reactor -- a reactor (handler objects and one dispatch loop) with
// helper threads for the blocking work: Flash's AMPED design
// (Pai, Druschel, Zwaenepoel, "Flash: An efficient and portable Web server",
// USENIX 1999), with BURN as the "disk read" that must not stall the loop.
//
//   Reactor            owns the epoll set, the timer heap and the handlers;
//                      run() waits and dispatches each ready fd to its
//                      EventHandler::handle().
//   Acceptor           handler of the listener: accepts, creates Connections.
//   StopWatcher        handler of the stop eventfd: stops accepting.
//   Connection         handler of one client: an EventConnection (the shared
//                      state machine) whose BURNs are handed to the helpers.
//   Helpers            --workers threads (8 MiB stacks) popping BURN jobs from
//                      a queue; each result goes on a completion queue and an
//                      eventfd wakes the loop.
//   CompletionHandler  handler of that eventfd: hands results back to their
//                      Connections (looked up by id: a connection may be gone).
//
// So the loop thread never computes a BURN (it needs no big stack) and a
// BURN stalls no one; WAIT is a timer, STREAM is written as the socket
// accepts it.  Costs over dumb_epoll: two queue operations, an eventfd write
// and read and a wake-up per BURN.  Breaks at: more concurrent BURNs than
// helpers (they queue), and the loop itself is still one core.
//
// Lifetimes: handlers closed during a batch of events are parked in
// `graveyard_` until the batch is done, so a later event of the same batch
// never reaches a freed handler.  Lock rule: Helpers::mutex_ guards the job
// and completion queues; the loop thread owns everything else.

#include <array>
#include <cerrno>
#include <condition_variable>
#include <cstdio>
#include <deque>
#include <memory>
#include <mutex>
#include <unordered_map>
#include <utility>
#include <vector>

#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "common/server_main.h"
#include "dumb/event_connection.h"
#include "dumb/timer_heap.h"

namespace {

using dumb::Clock;
using dumb::EventConnection;
using ConnectionId = std::uint64_t;

class EventHandler {
 public:
  virtual ~EventHandler() = default;
  virtual void handle(std::uint32_t events) = 0;
};

// ------------------------------------------------------------- helpers ---

class Helpers {
 public:
  struct Completion {
    ConnectionId id;
    std::string reply;
  };

  Helpers(int count) : wake_fd_(eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK)) {
    for (int i = 0; i < count; ++i) threads_.emplace_back([this] { work(); });
  }
  ~Helpers() {
    {
      std::lock_guard lock(mutex_);
      closing_ = true;
    }
    jobs_ready_.notify_all();
    threads_.clear();  // joins
    close(wake_fd_);
  }

  int wake_fd() const { return wake_fd_; }

  void submit(ConnectionId id, std::uint32_t n) {
    {
      std::lock_guard lock(mutex_);
      jobs_.push_back({id, n});
    }
    jobs_ready_.notify_one();
  }

  std::deque<Completion> take_completions() {
    std::uint64_t count;
    [[maybe_unused]] ssize_t r = read(wake_fd_, &count, sizeof count);
    std::lock_guard lock(mutex_);
    return std::exchange(completions_, {});
  }

 private:
  struct Job {
    ConnectionId id;
    std::uint32_t n;
  };

  void work() {
    for (;;) {
      Job job;
      {
        std::unique_lock lock(mutex_);
        jobs_ready_.wait(lock, [&] { return closing_ || !jobs_.empty(); });
        if (jobs_.empty()) return;  // closing
        job = jobs_.front();
        jobs_.pop_front();
      }
      std::string reply = dumb::format_result(dumb::burn(job.n));  // the deep recursion, on this stack
      {
        std::lock_guard lock(mutex_);
        completions_.push_back({job.id, std::move(reply)});
      }
      std::uint64_t one = 1;
      [[maybe_unused]] ssize_t w = write(wake_fd_, &one, sizeof one);
    }
  }

  int wake_fd_;                         // eventfd: completions are waiting
  std::mutex mutex_;                    // guards jobs_, completions_, closing_
  std::condition_variable jobs_ready_;  // signalled on submit and on closing
  std::deque<Job> jobs_;                // BURNs not yet started
  std::deque<Completion> completions_;  // results not yet handed back
  bool closing_ = false;
  std::vector<common::BigStackThread> threads_;  // last: joined first
};

// ------------------------------------------------------------- reactor ---

class Connection;

class Reactor {
 public:
  Reactor(common::ServerContext& ctx, int helpers);
  ~Reactor() { close(epoll_fd_); }

  void run();

  void add(int fd, EventHandler* handler, std::uint32_t events) { control(EPOLL_CTL_ADD, fd, handler, events); }
  void modify(int fd, EventHandler* handler, std::uint32_t events) { control(EPOLL_CTL_MOD, fd, handler, events); }
  void remove(int fd) { epoll_ctl(epoll_fd_, EPOLL_CTL_DEL, fd, nullptr); }

  void stop_accepting();
  void accept_connections();
  void update(Connection& conn);  // after the connection's state machine ran
  void close_connection(ConnectionId id);
  void deliver_completions();

  common::ServerContext& ctx;
  Helpers helpers;

 private:
  void control(int op, int fd, EventHandler* handler, std::uint32_t events) {
    epoll_event ev{};
    ev.events = events;
    ev.data.ptr = handler;
    epoll_ctl(epoll_fd_, op, fd, &ev);
  }

  int epoll_fd_;
  bool accepting_ = true;
  ConnectionId next_id_ = 1;
  std::unique_ptr<EventHandler> acceptor_, stop_watcher_, completion_handler_;
  std::unordered_map<ConnectionId, std::unique_ptr<Connection>> connections_;
  std::vector<std::unique_ptr<Connection>> graveyard_;  // closed during this batch
  dumb::TimerHeap<ConnectionId> timers_;                // WAIT deadlines
};

class Connection final : public EventHandler {
 public:
  Connection(Reactor& reactor, ConnectionId id, int fd) : reactor_(reactor), id_(id), machine_(fd) {
    machine_.set_burn_handoff([this](std::uint32_t n) { reactor_.helpers.submit(id_, n); });
  }
  void handle(std::uint32_t events) override {
    if ((events & (EPOLLHUP | EPOLLERR)) && machine_.interest() == EventConnection::Interest::kNone &&
        machine_.state() == EventConnection::State::kWaiting)
      return reactor_.close_connection(id_);  // gone while waiting: nothing to answer
    run(Clock::now());
  }
  void run(Clock::time_point now) {
    if (!machine_.drive(now, reactor_.ctx.stopping())) return reactor_.close_connection(id_);
    reactor_.update(*this);
  }
  void complete_burn(std::string reply) {
    machine_.complete_burn(std::move(reply));
    run(Clock::now());
  }

  ConnectionId id() const { return id_; }
  EventConnection& machine() { return machine_; }
  std::uint32_t events = EPOLLIN;  // mask registered with the reactor
  Clock::time_point armed{};       // deadline last pushed on the timer heap

 private:
  Reactor& reactor_;
  ConnectionId id_;
  EventConnection machine_;
};

class Acceptor final : public EventHandler {
 public:
  explicit Acceptor(Reactor& reactor) : reactor_(reactor) {}
  void handle(std::uint32_t) override { reactor_.accept_connections(); }

 private:
  Reactor& reactor_;
};

class StopWatcher final : public EventHandler {
 public:
  explicit StopWatcher(Reactor& reactor) : reactor_(reactor) {}
  void handle(std::uint32_t) override { reactor_.stop_accepting(); }

 private:
  Reactor& reactor_;
};

class CompletionHandler final : public EventHandler {
 public:
  explicit CompletionHandler(Reactor& reactor) : reactor_(reactor) {}
  void handle(std::uint32_t) override { reactor_.deliver_completions(); }

 private:
  Reactor& reactor_;
};

Reactor::Reactor(common::ServerContext& server, int helper_count)
    : ctx(server),
      helpers(helper_count),
      epoll_fd_(epoll_create1(EPOLL_CLOEXEC)),
      acceptor_(std::make_unique<Acceptor>(*this)),
      stop_watcher_(std::make_unique<StopWatcher>(*this)),
      completion_handler_(std::make_unique<CompletionHandler>(*this)) {
  add(ctx.listener(), acceptor_.get(), EPOLLIN);
  add(ctx.stop_fd(), stop_watcher_.get(), EPOLLIN);
  add(helpers.wake_fd(), completion_handler_.get(), EPOLLIN);
}

void Reactor::stop_accepting() {
  if (!accepting_) return;
  accepting_ = false;
  remove(ctx.listener());
  remove(ctx.stop_fd());
}

void Reactor::accept_connections() {
  for (int i = 0; i < 64 && accepting_; ++i) {
    int fd = ctx.accept_connection(/*nonblocking=*/true);
    if (fd < 0) {
      if (errno == EINVAL || ctx.stopping()) stop_accepting();
      return;
    }
    ctx.track(fd);
    ConnectionId id = next_id_++;
    auto conn = std::make_unique<Connection>(*this, id, fd);
    add(fd, conn.get(), EPOLLIN);
    connections_.emplace(id, std::move(conn));
  }
}

void Reactor::update(Connection& conn) {
  EventConnection& machine = conn.machine();
  std::uint32_t events = 0;
  if (machine.interest() == EventConnection::Interest::kRead) events = EPOLLIN;
  if (machine.interest() == EventConnection::Interest::kWrite) events = EPOLLOUT;
  if (events != conn.events) modify(machine.fd(), &conn, conn.events = events);
  if (machine.state() == EventConnection::State::kWaiting && conn.armed != machine.deadline())
    timers_.push(conn.armed = machine.deadline(), conn.id());
}

void Reactor::close_connection(ConnectionId id) {
  auto it = connections_.find(id);
  if (it == connections_.end()) return;
  ctx.untrack_and_close(it->second->machine().fd());
  graveyard_.push_back(std::move(it->second));
  connections_.erase(it);
}

void Reactor::deliver_completions() {
  for (auto& completion : helpers.take_completions()) {
    auto it = connections_.find(completion.id);
    if (it != connections_.end()) it->second->complete_burn(std::move(completion.reply));
  }
}

void Reactor::run() {
  std::array<epoll_event, 128> events;
  while (accepting_ || !connections_.empty()) {
    int n = epoll_wait(epoll_fd_, events.data(), static_cast<int>(events.size()), timers_.timeout_ms(Clock::now()));
    if (n < 0 && errno != EINTR) {
      std::perror("epoll_wait");
      break;
    }
    for (int i = 0; i < n; ++i) {
      auto* handler = static_cast<EventHandler*>(events[i].data.ptr);
      bool buried = false;  // closed earlier in this batch
      for (auto& dead : graveyard_) buried |= dead.get() == handler;
      if (!buried) handler->handle(events[i].events);
    }
    Clock::time_point now = Clock::now();
    while (auto id = timers_.pop_due(now)) {
      auto it = connections_.find(*id);
      if (it != connections_.end()) it->second->run(now);
    }
    graveyard_.clear();
  }
  for (auto& [id, conn] : connections_) ctx.untrack_and_close(conn->machine().fd());
}

void serve(common::ServerContext& ctx) { Reactor(ctx, ctx.config().workers).run(); }

}  // namespace

int main(int argc, char** argv) {
  return common::server_main(argc, argv, "dumb_reactor", serve, {2, "helper threads for BURN"});
}
