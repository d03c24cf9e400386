// hiredis.cpp: gort::hiredis::Connection; the design is in gort/hiredis.h.

#include <gort/hiredis.h>

#include <hiredis/async.h>
#include <hiredis/hiredis.h>

#include <cstring>
#include <map>
#include <mutex>

#include <gort/chan.h>
#include <gort/condvar.h>
#include <gort/gort.h>
#include <gort/mutex.h>
#include <gort/net/poll_fd.h>
#include <gort/waitgroup.h>

namespace gort::hiredis {

using gort::net::Errc;
using gort::net::Error;

struct Connection::State {
  gort::Mutex mu;                   // every call into ac, and the fields below
  gort::CondVar changed;            // a hook or the end changed a flag
  redisAsyncContext* ac = nullptr;  // null once hiredis freed it (cleanup)
  gort::net::PollFd watch;          // ac's socket on the poller
  bool want_write = false;          // hiredis has output queued (addWrite .. delWrite)
  bool ended = false;               // cleanup ran: the drivers leave
  std::string error;                // what hiredis said when the connection was lost
  std::string where;                // "redis host:port", for errors
  gort::WaitGroup drivers;          // the reader and writer fibers
  // Subscriber only: messages parsed by the last read, waiting for the
  // reader to move them to `messages` (outside mu); and the confirmations
  // subscribe()/unsubscribe() wait for, by channel.
  std::vector<Message> inbox;
  std::unique_ptr<gort::Chan<Message>> messages;
  std::map<std::string, gort::Chan<bool>*> confirm;
};

namespace {

using State = Connection::State;

Value copy(const redisReply* r) {
  Value v;
  switch (r->type) {
    case REDIS_REPLY_STRING:
      v.type = Value::kString;
      v.str.assign(r->str, r->len);
      break;
    case REDIS_REPLY_STATUS:
      v.type = Value::kStatus;
      v.str.assign(r->str, r->len);
      break;
    case REDIS_REPLY_ERROR:
      v.type = Value::kError;
      v.str.assign(r->str, r->len);
      break;
    case REDIS_REPLY_INTEGER:
      v.type = Value::kInteger;
      v.integer = r->integer;
      break;
    case REDIS_REPLY_ARRAY:
      v.type = Value::kArray;
      v.elements.reserve(r->elements);
      for (std::size_t i = 0; i < r->elements; ++i) v.elements.push_back(copy(r->element[i]));
      break;
    default: v.type = Value::kNil; break;
  }
  return v;
}

// hiredis's hooks: called inside hiredis, so with State::mu held.
void add_write(void* p) {
  auto* s = static_cast<State*>(p);
  s->want_write = true;
  s->changed.notify_all();
}
void del_write(void* p) { static_cast<State*>(p)->want_write = false; }
void add_read(void*) {}  // the reader always waits for input while the context lives
void del_read(void*) {}
void cleanup(void* p) {
  auto* s = static_cast<State*>(p);
  if (s->ac != nullptr && s->ac->err != 0 && s->error.empty()) s->error = s->ac->errstr;
  s->ac = nullptr;
  s->ended = true;
  for (auto& [key, waiter] : s->confirm) (void)waiter->try_send(false);  // never confirmed now
  s->confirm.clear();
  (void)s->watch.close();  // before hiredis closes the socket
  s->changed.notify_all();
}

// Moves the messages of the last read to the subscriber's channel, outside
// mu (the send may wait for the consumer). False once nobody consumes.
bool deliver(State& s, std::vector<Message>& batch) {
  for (Message& m : batch) {
    try {
      s.messages->send(std::move(m));
    } catch (const gort::ChanClosed&) {
      return false;
    }
  }
  batch.clear();
  return true;
}

void reader(std::shared_ptr<State> s) {
  std::vector<Message> batch;
  for (;;) {
    auto ready = s->watch.wait_readable();  // not under mu: hiredis calls wait for it
    {
      std::lock_guard<gort::Mutex> lock(s->mu);
      if (s->ended) break;
      if (!ready) {  // cannot happen while the context lives; end it rather than spin
        s->error = "waiting for input: " + ready.error().message();
        redisAsyncFree(s->ac);
        break;
      }
      redisAsyncHandleRead(s->ac);  // may end the context (cleanup)
      batch.swap(s->inbox);
    }
    if (!batch.empty() && !deliver(*s, batch)) break;
  }
  if (s->messages) {
    {
      std::lock_guard<gort::Mutex> lock(s->mu);
      batch.swap(s->inbox);  // parsed by the read that ended the connection
    }
    if (deliver(*s, batch)) {
      try {
        s->messages->close();  // the consumer sees the end after the last message
      } catch (const gort::ChanClosed&) {
      }
    }
  }
  s->drivers.done();
}

void writer(std::shared_ptr<State> s) {
  for (;;) {
    {
      std::unique_lock<gort::Mutex> lock(s->mu);
      s->changed.wait(lock, [&] { return s->ended || s->want_write; });
      if (s->ended) break;
    }
    auto ready = s->watch.wait_writable();
    std::lock_guard<gort::Mutex> lock(s->mu);
    if (s->ended) break;
    if (!ready) {
      s->error = "waiting to write: " + ready.error().message();
      redisAsyncFree(s->ac);
      break;
    }
    redisAsyncHandleWrite(s->ac);  // connects first, then writes; may end the context
  }
  s->drivers.done();
}

// One command's reply, handed from hiredis's callback to the caller.
struct Pending {
  gort::Chan<Result<Value>> reply{1};
  State* state;
};

void on_reply(redisAsyncContext* ac, void* r, void* p) {
  auto* pending = static_cast<Pending*>(p);
  if (r != nullptr) {
    (void)pending->reply.try_send(copy(static_cast<redisReply*>(r)));
    return;
  }
  // No reply: the context is going away (lost, or freed by ~Connection).
  if (ac->err != 0 && pending->state->error.empty()) pending->state->error = ac->errstr;
  (void)pending->reply.try_send(Error(Errc::kClosed).with_op(pending->state->where));
}

// A subscription's callback, for every reply on its channel: the
// confirmation of (un)subscribe, then each message. Runs under mu.
void on_subscription(redisAsyncContext*, void* r, void* p) {
  auto* s = static_cast<State*>(p);
  auto* reply = static_cast<redisReply*>(r);
  if (reply == nullptr || reply->type != REDIS_REPLY_ARRAY || reply->elements < 3) return;
  std::string kind(reply->element[0]->str ? reply->element[0]->str : "", reply->element[0]->len);
  std::string channel(reply->element[1]->str ? reply->element[1]->str : "", reply->element[1]->len);
  if (kind == "message") {
    s->inbox.push_back(Message{std::move(channel), std::string(reply->element[2]->str, reply->element[2]->len)});
  } else if (kind == "subscribe" || kind == "unsubscribe") {
    if (auto it = s->confirm.find(kind + " " + channel); it != s->confirm.end()) {
      (void)it->second->try_send(true);
      s->confirm.erase(it);
    }
  }
}

// connect()'s body, shared by Connection and Subscriber: the context, its
// PollFd and hooks, the driver fibers.
Result<std::shared_ptr<State>> open_state(const std::string& host, int port, std::size_t buffer) {
  auto s = std::make_shared<State>();
  s->where = "redis " + host + ":" + std::to_string(port);
  if (buffer > 0) s->messages = std::make_unique<gort::Chan<Message>>(buffer);
  redisAsyncContext* ac = redisAsyncConnect(host.c_str(), port);
  if (ac == nullptr) return Error(Errc::kSystem, ENOMEM).with_op(s->where);
  if (ac->err != 0) {
    Error e = Error(ac->err == REDIS_ERR_IO ? Error::from_errno(errno) : Error(Errc::kSystem, 0, "hiredis error"))
                  .with_op(s->where);
    redisAsyncFree(ac);
    return e;
  }
  auto watch = gort::net::PollFd::open(ac->c.fd);
  if (!watch) {
    redisAsyncFree(ac);
    return watch.error().with_op(s->where);
  }
  s->watch = std::move(*watch);
  {
    std::lock_guard<gort::Mutex> lock(s->mu);
    s->ac = ac;
    ac->ev.data = s.get();
    ac->ev.addRead = add_read;
    ac->ev.delRead = del_read;
    ac->ev.addWrite = add_write;
    ac->ev.delWrite = del_write;
    ac->ev.cleanup = cleanup;
    s->want_write = true;  // the connect completes on the first writable event
  }
  s->drivers.add(2);
  go_spawn([s] { reader(s); });
  go_spawn([s] { writer(s); });
  return s;
}

// One command on s's context: submitted under mu with on_reply, and the
// caller parks until its reply (or the context's end) arrives.
Result<Value> submit(State& s, int (*send)(redisAsyncContext*, void*, void*), void* arg) {
  Pending pending;
  pending.state = &s;
  {
    std::lock_guard<gort::Mutex> lock(s.mu);
    if (s.ended) return Error(Errc::kClosed).with_op(s.where);
    if (send(s.ac, &pending, arg) != REDIS_OK)
      return Error(Errc::kSystem, 0, "hiredis refused the command").with_op(s.where);
  }
  return *pending.reply.recv();  // never closed: the callback always sends once
}

// A PING round trip: whether the connect succeeded, with hiredis's reason.
Result<void> check_connected(State& s) {
  auto pong = submit(
      s, [](redisAsyncContext* ac, void* pending, void*) { return redisAsyncCommand(ac, on_reply, pending, "PING"); },
      nullptr);
  if (pong) return {};
  std::lock_guard<gort::Mutex> lock(s.mu);
  return Error(Errc::kRefused).with_op(s.where + ": " + s.error);
}

// connected() and last_error() of both classes.
bool is_connected(State& s) {
  std::lock_guard<gort::Mutex> lock(s.mu);
  return !s.ended;
}
std::string error_of(State& s) {
  std::lock_guard<gort::Mutex> lock(s.mu);
  return s.error;
}

void free_and_wait(State& s) {
  {
    std::lock_guard<gort::Mutex> lock(s.mu);
    if (!s.ended) redisAsyncFree(s.ac);  // fails pending commands, runs cleanup
  }
  if (s.messages) {
    try {
      s.messages->close();  // a reader blocked on a full channel lets go
    } catch (const gort::ChanClosed&) {
    }
  }
  s.drivers.wait();
}

}  // namespace

Connection::Connection(std::shared_ptr<State> state) : state_(std::move(state)) {}

Result<std::unique_ptr<Connection>> Connection::connect(const std::string& host, int port) {
  auto opened = open_state(host, port, 0);
  if (!opened) return opened.error();
  std::shared_ptr<State> s = std::move(*opened);
  std::unique_ptr<Connection> c(new Connection(s));
  if (auto up = check_connected(*s); !up) return up.error();
  return c;
}

Connection::~Connection() { free_and_wait(*state_); }

Result<Value> Connection::command(const char* format, ...) {
  struct Args {
    const char* format;
    va_list* ap;
  };
  va_list ap;
  va_start(ap, format);
  Args args{format, &ap};
  auto r = submit(
      *state_,
      [](redisAsyncContext* ac, void* pending, void* a) {
        auto* args = static_cast<Args*>(a);
        return redisvAsyncCommand(ac, on_reply, pending, args->format, *args->ap);
      },
      &args);
  va_end(ap);
  return r;
}

Result<Value> Connection::command_argv(const std::vector<std::string>& args) {
  std::vector<const char*> argv;
  std::vector<std::size_t> lens;
  for (const auto& a : args) {
    argv.push_back(a.data());
    lens.push_back(a.size());
  }
  struct Argv {
    int argc;
    const char** argv;
    const std::size_t* lens;
  } packed{int(args.size()), argv.data(), lens.data()};
  return submit(
      *state_,
      [](redisAsyncContext* ac, void* pending, void* a) {
        auto* p = static_cast<Argv*>(a);
        return redisAsyncCommandArgv(ac, on_reply, pending, p->argc, p->argv, p->lens);
      },
      &packed);
}

bool Connection::connected() const { return is_connected(*state_); }
std::string Connection::last_error() const { return error_of(*state_); }

// ---- Subscriber ----

Subscriber::Subscriber(std::shared_ptr<Connection::State> state) : state_(std::move(state)) {}

Result<std::unique_ptr<Subscriber>> Subscriber::connect(const std::string& host, int port, std::size_t buffer) {
  auto opened = open_state(host, port, buffer < 1 ? 1 : buffer);
  if (!opened) return opened.error();
  std::unique_ptr<Subscriber> sub(new Subscriber(std::move(*opened)));
  if (auto up = check_connected(*sub->state_); !up) return up.error();  // before any subscription
  return sub;
}

Subscriber::~Subscriber() { free_and_wait(*state_); }

Result<void> Subscriber::subscribe(const std::string& channel) { return change("subscribe", channel); }
Result<void> Subscriber::unsubscribe(const std::string& channel) { return change("unsubscribe", channel); }

Result<void> Subscriber::change(const char* verb, const std::string& channel) {
  gort::Chan<bool> confirmed(1);
  {
    std::lock_guard<gort::Mutex> lock(state_->mu);
    if (state_->ended) return Error(Errc::kClosed).with_op(state_->where);
    std::string key = std::string(verb) + " " + channel;
    if (state_->confirm.count(key)) return Error(Errc::kSystem, EALREADY, "already in progress").with_op(state_->where);
    state_->confirm[key] = &confirmed;
    const char* argv[] = {verb, channel.data()};
    const std::size_t lens[] = {std::strlen(verb), channel.size()};
    if (redisAsyncCommandArgv(state_->ac, on_subscription, state_.get(), 2, argv, lens) != REDIS_OK) {
      state_->confirm.erase(key);
      return Error(Errc::kSystem, 0, "hiredis refused the command").with_op(state_->where);
    }
  }
  // true: Redis confirmed; false: the connection ended first (cleanup).
  if (*confirmed.recv()) return {};
  return Error(Errc::kClosed).with_op(state_->where);
}

gort::Chan<Message>& Subscriber::messages() { return *state_->messages; }

bool Subscriber::connected() const { return is_connected(*state_); }
std::string Subscriber::last_error() const { return error_of(*state_); }

}  // namespace gort::hiredis
