// gort/hiredis.h: Redis from fibers through hiredis's asynchronous API
// (redisAsyncContext), with hiredis's event hooks on gort's poller
// (gort::net::PollFd) -- what hiredis's adapters/libevent.h does for
// libevent.
//
//   auto redis = gort::hiredis::Connection::connect("127.0.0.1", 6379);  // in a fiber
//   auto n = (*redis)->command("INCR %s", "users");       // parks until the reply
//   if (n && n->type == gort::hiredis::Value::kInteger) use(n->integer);
//
// Design
//  * One redisAsyncContext per Connection, and one gort::Mutex around every
//    call into it: hiredis is not thread-safe, and fibers of one Connection
//    run on any worker.
//  * hiredis's hooks (addRead/delRead/addWrite/delWrite/cleanup) only set
//    flags and notify a CondVar; two driver fibers do the I/O: the reader
//    waits on the PollFd for readability and calls redisAsyncHandleRead,
//    the writer waits until hiredis wants to write, then for writability,
//    and calls redisAsyncHandleWrite. Each takes the Mutex only around the
//    hiredis call, never while parked on the descriptor.
//  * command() submits under the Mutex with a reply callback and parks on a
//    one-slot channel; the callback (run by the reader fiber inside
//    hiredis) copies the reply into a Value (hiredis frees its own after
//    the callback) and sends it. The send never blocks: one slot, one reply.
//  * The cleanup hook, which hiredis runs before it closes the socket,
//    closes the PollFd, so the descriptor leaves the poller before its
//    number can be reused (poll_fd.h).
//  * A lost connection (EOF, reset, refused) fails the commands in flight
//    and later ones with Errc::kClosed; the message says what hiredis saw.
//    Reconnecting is the caller's: make a new Connection.
//  * The destructor frees the context (pending commands fail) and waits for
//    the driver fibers; it must run in a fiber of the same runtime.
//  * Subscriber (pub/sub): hiredis calls a subscription's callback once per
//    message, inside redisAsyncHandleRead, under the Mutex. The callback only
//    appends to an inbox; the reader fiber moves the inbox to messages()
//    after the call, without the Mutex, and blocks there while the channel
//    is full. So a slow consumer slows the reading (Redis then applies its
//    own limit for slow subscribers), nothing is dropped, the inbox holds at
//    most what one read of the socket parsed, and a consumer may call
//    subscribe() while the reader waits for it.
#pragma once

#include <cstdarg>
#include <memory>
#include <string>
#include <vector>

#include <gort/chan.h>
#include <gort/net/result.h>

struct redisAsyncContext;

namespace gort::hiredis {

using gort::net::Result;

// A reply, copied out of hiredis's redisReply.
struct Value {
  enum Type { kString, kArray, kInteger, kNil, kStatus, kError };
  Type type = kNil;
  long long integer = 0;        // kInteger
  std::string str;              // kString, kStatus, kError
  std::vector<Value> elements;  // kArray
};

class Connection {
 public:
  // Connects (in a fiber); fails with the error hiredis reports. `host` is
  // best an IP address: hiredis resolves a name with a blocking
  // getaddrinfo (call connect inside gort::blocking for a name).
  static Result<std::unique_ptr<Connection>> connect(const std::string& host, int port);
  ~Connection();
  Connection(const Connection&) = delete;
  Connection& operator=(const Connection&) = delete;

  // A command in hiredis's printf-like format ("SET %s %b"); parks the
  // calling fiber until its reply. A Redis error reply is a Value of type
  // kError, not an Error: the connection is fine.
  Result<Value> command(const char* format, ...) __attribute__((format(printf, 2, 3)));
  // The same with one argument per element (binary-safe, no format).
  Result<Value> command_argv(const std::vector<std::string>& args);

  bool connected() const;
  // What hiredis said when the connection was lost, or "".
  std::string last_error() const;

  struct State;  // shared with the driver fibers and hiredis's callbacks

 private:
  explicit Connection(std::shared_ptr<State> state);
  std::shared_ptr<State> state_;
};

// A message published on a channel the Subscriber subscribed to.
struct Message {
  std::string channel;
  std::string payload;
};

// A connection in Redis's subscribe mode: it only (un)subscribes; messages
// arrive on messages() in the order Redis sent them, which is closed when
// the connection ends (lost or destroyed).
class Subscriber {
 public:
  // `buffer`: messages() capacity (>= 1).
  static Result<std::unique_ptr<Subscriber>> connect(const std::string& host, int port, std::size_t buffer = 1024);
  ~Subscriber();
  // Parks until Redis confirmed the subscription: a message published after
  // subscribe() returns is delivered.
  Result<void> subscribe(const std::string& channel);
  Result<void> unsubscribe(const std::string& channel);
  gort::Chan<Message>& messages();
  bool connected() const;
  std::string last_error() const;

 private:
  explicit Subscriber(std::shared_ptr<Connection::State> state);
  Result<void> change(const char* verb, const std::string& channel);
  std::shared_ptr<Connection::State> state_;
};

}  // namespace gort::hiredis
