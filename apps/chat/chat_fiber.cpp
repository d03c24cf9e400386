// chat_fiber -- the chat room (protocol: chat/room.h) on gort, built from
// fibers and channels in the manner of Go's chat examples.
//
// Fibers:
//   reader     (one per client: the handler gort::net::Server runs in the
//              client's connection fiber) sends Join to the
//              hub, spawns the client's writer, then reads, frames with
//              common::LineFramer, formats "[User <id>]: <line>\n" once and
//              sends it to the hub as Say; an overlong line becomes Refuse;
//              EOF or an error becomes Leave.  It returns once its writer
//              has: the Server closes the Conn when the handler returns.
//   hub        the only owner of the room (the map of clients).  It receives
//              events on one channel, `events`, and never blocks on a client:
//              it only try_sends into each client's outbox.
//   writer     (one per client) receives from its outbox, a bounded channel
//              of shared messages, and writes them to the socket.
//
// Slow clients (Go's design): the room never waits on a client.  Each
// client has a bounded outbox drained by its own writer fiber; the hub only
// try_sends into it.  A message is shared by every recipient (one
// allocation per line, not per client).  A client whose outbox is full --
// kOutbox messages or chat::kMaxQueued bytes behind the room (the bound of
// the other chat servers), on top of what its socket (kSendBuffer) and the
// peer hold -- is not reading: the hub drops it (Hub::drop) and its
// writer tells it why (kDropped, best effort within kFarewell) and closes
// the connection.  kOutbox is far more than a client that reads ever falls
// behind (its writer takes everything queued in one write), so only clients
// that do not read are dropped.  A client costs at most kOutbox pointers
// (the messages themselves are shared, <= kMaxQueued bytes of them), its
// writer's batch and its socket buffer.
// Rejected: a grace period in which the hub waits for a full outbox -- with
// many slow readers the graces add up, one after another, and the whole
// room waits behind them; an unbounded outbox -- a client that never reads
// would hold every message forever.
//
// The hub never touches a client's Conn: the Conn belongs to the reader's
// fiber (the Server destroys it when the reader returns), and only the
// reader and the writer, which the reader waits for, use it.  The hub ends
// a client's writing by canceling its `writing` context and closing its
// outbox; the writer then closes the Conn, which ends the reader's read.
//
// Limits (docs/SERVERS.md): past --max-connections the Server answers a new
// client kServerBusy and closes it; --idle-timeout (off by default: a chat
// client that only listens is silent, not idle) bounds how long a reader
// waits for a client's next bytes.
//
// Across nodes (--redis HOST:PORT, chat/redis_bus.h): the hub hands each
// Say, after delivering it here, to the bus, which publishes it to the
// other nodes without the hub waiting; the bus's link fiber sends lines of
// other nodes to the hub as Remote, which goes to every client here. User
// numbers then come from Redis, unique across nodes. The bus stops before
// the hub (it sends to it).
//
// Ordering: clients are numbered in accept order (the Server's
// conn_context runs in the accepting fiber); a reader sends Join before it
// reads, and the hub receives in FIFO order, so a client's greeting
// precedes every message it receives and its own messages reach the hub
// after its Join.
//
// Stop (SIGINT/SIGTERM, fiber_server.h): the Server's shutdown shuts every
// client's read side down; each reader sees end of file and sends Leave, the
// hub closes that client's outbox and its writer ends.  Once the Server has
// no handler left (after --drain-ms at most: it then closes the Conns, and
// the writers' writes fail), the main fiber sends Stop to the hub and waits
// for it.  Lifetimes: each client's state is a shared_ptr held by its two
// fibers and the hub's map; `events` lives on the main fiber's stack, which
// outlives every reader (the Server waits for them) and the hub.

#include <sys/socket.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <variant>

#include <gort/chan.h>
#include <gort/gort.h>
#include <gort/net.h>

#include "chat/redis_bus.h"
#include "chat/room.h"
#include "common/fiber_server.h"
#include "common/line_framer.h"

namespace {

using gort::net::Conn;
using Message = std::shared_ptr<const std::string>;

constexpr std::size_t kOutbox = 1024;  // messages queued per client before it is dropped
constexpr std::size_t kEvents = 1024;  // hub backlog; readers wait when it is full
constexpr std::size_t kReadBuffer = 4096;
constexpr std::size_t kWriteBatch = 64 * 1024;              // bytes a writer gathers into one write
constexpr auto kFarewell = std::chrono::milliseconds(200);  // a dropped client's writer gives up writing after this
constexpr std::string_view kDropped = "ERROR not reading: disconnected\n";
constexpr int kHubTurn = 32;  // events the hub handles before it yields

struct Client {
  Client(int64_t id, Conn& conn) : id(id), conn(conn) {
    auto [ctx, cancel] = gort::with_cancel(gort::background());
    writing = std::move(ctx);
    stop_writing = std::move(cancel);
  }
  const int64_t id;
  Conn& conn;                           // the reader's (the Server's); used by the reader and the writer only
  gort::Chan<Message> outbox{kOutbox};  // hub -> writer; closed by the hub
  gort::Context writing;                // the writer's writes; canceled by the hub when it lets the client go
  gort::CancelFunc stop_writing;
  // Bytes of the messages in the outbox: added by the hub before it sends,
  // taken off by the writer as it receives.  Relaxed: only a bound.
  std::atomic<std::size_t> queued_bytes{0};
  // Set by the hub before it ends the writing of a client it drops for not
  // reading; the writer, which sees its outbox closed or its write
  // canceled, then says why.  Relaxed: the outbox's close and the context's
  // cancellation order it before the writer's check.
  std::atomic<bool> dropped{false};
  gort::WaitGroup writer_done;  // the reader waits for it: the Conn goes when the reader returns
};

struct Join {
  std::shared_ptr<Client> client;
};
struct Leave {
  int64_t id;
};
struct Say {
  int64_t id;
  Message text;  // "[User <id>]: <line>\n"
};
struct Remote {  // a line said on another node (--redis)
  Message text;
};
struct Refuse {  // the client sent an overlong line
  int64_t id;
};
struct Stop {};
using Event = std::variant<Join, Leave, Say, Remote, Refuse, Stop>;

struct Shared {
  gort::Chan<Event> events{kEvents};
  // The next client's number (without --redis), given by the Server's
  // conn_context in the accepting fibers, one per listener: atomic.
  std::atomic<int64_t> next_id{1};
  std::unique_ptr<chat::RedisBus> bus;  // --redis: other nodes' lines in, ours out, numbers
  gort::WaitGroup hub_done;
};

class Hub {
 public:
  explicit Hub(chat::RedisBus* bus) : bus_(bus) {}
  void run(Shared& shared) {
    for (int handled = 1;; ++handled) {
      auto event = shared.events.recv();
      if (!event || std::holds_alternative<Stop>(*event)) break;
      std::visit([this](auto& e) { handle(e); }, *event);
      // With a backlog, recv never parks the hub, and writers it readied
      // wait behind it on this worker (gort has no preemption): let them
      // drain their outboxes every kHubTurn events.
      if (handled % kHubTurn == 0) gort::yield();
    }
    for (auto& [id, client] : clients_) disconnect(*client);  // none: every reader has left
    clients_.clear();
  }

 private:
  void handle(Join& e) {
    clients_.emplace(e.client->id, e.client);
    auto welcome = std::make_shared<const std::string>("Welcome chat user no. " + std::to_string(e.client->id) + "!\n");
    deliver(e.client->id, *e.client, std::move(welcome));
  }
  void handle(Leave& e) {
    auto it = clients_.find(e.id);
    if (it == clients_.end()) return;  // already dropped as slow
    disconnect(*it->second);
    clients_.erase(it);
  }
  void handle(Say& e) {
    for (auto it = clients_.begin(); it != clients_.end();) {
      auto next = std::next(it);
      if (it->first != e.id) deliver(it->first, *it->second, e.text);
      it = next;  // deliver may erase `it`
    }
    if (bus_) bus_->publish(*e.text);  // never waits: the room does not wait for Redis either
  }
  void handle(Remote& e) {
    for (auto it = clients_.begin(); it != clients_.end();) {
      auto next = std::next(it);
      deliver(it->first, *it->second, e.text);
      it = next;
    }
  }
  void handle(Refuse& e) {
    auto it = clients_.find(e.id);
    if (it != clients_.end()) deliver(e.id, *it->second, refusal_);
  }
  void handle(Stop&) {}

  void deliver(int64_t id, Client& to, Message message) {
    std::size_t size = message->size();
    if (to.queued_bytes.load(std::memory_order_relaxed) + size > chat::kMaxQueued) return drop(id, to);
    to.queued_bytes.fetch_add(size, std::memory_order_relaxed);
    if (!to.outbox.try_send(std::move(message))) drop(id, to);
  }
  // The room does not wait for a client that is kOutbox messages behind:
  // its writer says why and closes the connection (write_client), its
  // reader then sees it closed and sends a Leave the hub ignores.
  void drop(int64_t id, Client& to) {
    std::fprintf(stderr, "chat_fiber: user %lld is not reading; disconnected\n", static_cast<long long>(id));
    to.dropped.store(true, std::memory_order_relaxed);
    disconnect(to);
    clients_.erase(id);
  }
  // Ends a write the writer is parked in now (the socket is full) and the
  // writer itself, which closes the connection.
  static void disconnect(Client& client) {
    client.stop_writing();
    client.outbox.close();
  }

  chat::RedisBus* const bus_;                           // null without --redis
  std::map<int64_t, std::shared_ptr<Client>> clients_;  // the room, by id
  const Message refusal_ = std::make_shared<const std::string>(common::kLineTooLong);
};

void read_client(Shared& shared, Client& client, std::chrono::milliseconds idle_timeout) {
  auto buf = std::make_unique<char[]>(kReadBuffer);
  common::LineFramer framer(chat::kMaxLine);
  const std::string prefix = "[User " + std::to_string(client.id) + "]: ";
  for (;;) {
    if (idle_timeout.count() > 0) (void)client.conn.set_read_deadline(gort::net::Clock::now() + idle_timeout);
    auto n = client.conn.read(buf.get(), kReadBuffer);
    if (!n) {
      // End of file, an error, silent past --idle-timeout: the Leave makes
      // the hub end the writer (a write in progress too: no farewell).
      shared.events.send(Leave{client.id});
      return;
    }
    std::string_view in(buf.get(), *n);
    for (;;) {
      auto frame = framer.next(in);
      if (!frame) break;
      if (frame->kind == common::Frame::Kind::kTooLong) {
        shared.events.send(Refuse{client.id});
      } else {
        std::string text;
        text.reserve(prefix.size() + frame->line.size() + 1);
        text.append(prefix).append(frame->line).push_back('\n');
        shared.events.send(Say{client.id, std::make_shared<const std::string>(std::move(text))});
      }
    }
  }
}

// Receives a message, takes whatever else is already queued (up to
// kWriteBatch bytes) and writes it all with one write_all: one syscall for a
// burst, so a reader keeping up with the room is never the bottleneck.
// When the hub drops the client, the queued rest is skipped and the client
// is told why (best effort: its socket may be full until kFarewell).  The
// connection is closed at the end, so that the reader's read ends too.
void write_client(Client& client) {
  std::string batch;
  for (auto message = client.outbox.recv(); message; message = client.outbox.recv()) {
    if (client.dropped.load(std::memory_order_relaxed)) break;
    batch.assign(**message);
    while (batch.size() < kWriteBatch) {
      auto more = client.outbox.try_recv();
      if (!more) break;
      batch.append(**more);
    }
    client.queued_bytes.fetch_sub(batch.size(), std::memory_order_relaxed);
    if (!client.conn.write_all(client.writing, batch)) break;
  }
  if (client.dropped.load(std::memory_order_relaxed)) {
    client.conn.set_write_deadline(gort::net::Clock::now() + kFarewell);
    (void)client.conn.write_all(kDropped);
  }
  (void)client.conn.close();  // the reader sees it and tells the hub
}

// A client's number, given in accept order by the Server's conn_context
// (from Redis with --redis: unique across nodes).
const gort::ContextKey<int64_t> kClientId{"chat client id"};

// The handler of a client's connection: the reader, which starts the writer
// and waits for it.
void serve_client(Shared& shared, int64_t id, Conn& conn, std::chrono::milliseconds idle_timeout) {
  int sndbuf = chat::kSendBuffer;  // fixed, as room.h: bounds what a slow client holds
  setsockopt(conn.native_handle(), SOL_SOCKET, SO_SNDBUF, &sndbuf, sizeof sndbuf);
  auto client = std::make_shared<Client>(id, conn);
  shared.events.send(Join{client});
  client->writer_done.add(1);
  gort::spawn(gort::SpawnOptions{0, "chat_fiber writer"}, [client] {
    write_client(*client);
    client->writer_done.done();
  });
  read_client(shared, *client, idle_timeout);
  client->writer_done.wait();
}

int serve(common::FiberServer& fiber_server) {
  Shared shared;
  const std::string& redis = fiber_server.config().redis;
  if (!redis.empty()) {
    std::size_t colon = redis.rfind(':');
    shared.bus = std::make_unique<chat::RedisBus>(
        redis.substr(0, colon), std::stoi(redis.substr(colon + 1)), [&shared](std::string line) {
          shared.events.send(Remote{std::make_shared<const std::string>(std::move(line))});
        });
    shared.bus->start();
  }
  shared.hub_done.add(1);
  go_spawn([&] {
    Hub(shared.bus.get()).run(shared);
    shared.hub_done.done();
  });
  gort::net::ServerOptions options = fiber_server.server_options("chat_fiber reader");
  options.conn_context = [&shared](const gort::Context& base, Conn&) {
    int64_t id = shared.bus ? shared.bus->next_user_id() : shared.next_id.fetch_add(1, std::memory_order_relaxed);
    return gort::with_value(base, kClientId, id);
  };
  gort::net::Server server(
      [&shared, idle = fiber_server.config().idle_timeout](const gort::Context& ctx, Conn& conn) {
        serve_client(shared, *ctx.value(kClientId), conn, idle);
      },
      std::move(options));
  int status = fiber_server.serve_until_stopped(server);
  if (shared.bus) shared.bus->stop();  // its link fiber sends to the hub: stopped first
  shared.events.send(Stop{});          // every reader has returned, the bus is stopped: nothing else sends
  shared.hub_done.wait();
  return status;
}

}  // namespace

int main(int argc, char** argv) { return common::fiber_server_main(argc, argv, "chat_fiber", serve); }
