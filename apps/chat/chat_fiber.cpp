// chat_fiber -- the chat room (protocol: chat/room.h) on gort, built from
// fibers and channels in the manner of Go's chat examples.
//
// Fibers:
//   acceptor   accepts, numbers the client, sends Join to the hub, spawns
//              the client's reader and writer.
//   hub        the only owner of the room (the map of clients).  It receives
//              events on one channel, `events`, and never blocks on a client:
//              it only try_sends into each client's outbox.
//   reader     (one per client) reads, frames with dumb::LineFramer, formats
//              "[User <id>]: <line>\n" once and sends it to the hub as
//              Message; an overlong line becomes Refuse; EOF or an error
//              becomes Leave.
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
// Limits (docs/SERVERS.md): past --max-connections the acceptor answers a
// new client kServerBusy and closes it; --idle-timeout (off by default: a
// chat client that only listens is silent, not idle) bounds how long a
// reader waits for a client's next bytes.
//
// Ordering: the acceptor sends Join before it spawns the reader, and the
// hub receives in FIFO order, so a client's greeting precedes every message
// it receives and its own messages reach the hub after its Join.
//
// Stop (SIGINT/SIGTERM, fiber_server.h): the main fiber closes the Listener,
// waits for the acceptor, sends Stop to the hub -- which closes every
// client's Conn and outbox and returns -- and then closes `events`, so a
// reader still sending gets ChanClosed.  Readers and writers, their Conns
// closed, return at once; FiberServer::drain waits for `active` to reach 0.
// Lifetimes: each client's state is a shared_ptr held by its two fibers and
// the hub's map; `events` and the counters live on the main fiber's stack,
// which outlives every fiber (drain).

#include <sys/socket.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <variant>

#include <gort/gort.h>
#include <gort/chan.h>
#include <gort/net.h>

#include "chat/room.h"
#include "dumb/fiber_server.h"
#include "dumb/protocol.h"

namespace {

using gort::net::Conn;
using Message = std::shared_ptr<const std::string>;

constexpr std::size_t kOutbox = 1024;  // messages queued per client before it is dropped
constexpr std::size_t kEvents = 1024;  // hub backlog; readers wait when it is full
constexpr std::size_t kReadBuffer = 4096;
constexpr std::size_t kWriteBatch = 64 * 1024;  // bytes a writer gathers into one write
constexpr auto kFarewell = std::chrono::milliseconds(200);  // a dropped client's writer gives up writing after this
constexpr std::string_view kDropped = "ERROR not reading: disconnected\n";
constexpr int kHubTurn = 32;           // events the hub handles before it yields

struct Client {
  Client(int id, Conn conn) : id(id), conn(std::move(conn)) {}
  const int id;
  Conn conn;                          // read by the reader, written by the writer, closed by the writer or hub
  gort::Chan<Message> outbox{kOutbox};  // hub -> writer; closed by the hub
  // Bytes of the messages in the outbox: added by the hub before it sends,
  // taken off by the writer as it receives.  Relaxed: only a bound.
  std::atomic<std::size_t> queued_bytes{0};
  // Set by the hub before it closes the outbox of a client it drops for not
  // reading; the writer, which sees the outbox closed, then says why.
  // Relaxed: the outbox's close orders it before the writer's recv.
  std::atomic<bool> dropped{false};
};

struct Join {
  std::shared_ptr<Client> client;
};
struct Leave {
  int id;
};
struct Say {
  int id;
  Message text;  // "[User <id>]: <line>\n"
};
struct Refuse {  // the client sent an overlong line
  int id;
};
struct Stop {};
using Event = std::variant<Join, Leave, Say, Refuse, Stop>;

struct Shared {
  gort::Chan<Event> events{kEvents};
  // Clients connected, for --max-connections: incremented by the acceptor,
  // decremented when a client's reader ends.  Relaxed: a count.
  std::atomic<int> clients{0};
  std::atomic<int> active{0};  // fibers running: acceptor, hub, readers, writers
  std::atomic<bool> stopping{false};  // set by the main fiber before it closes the Listener
  gort::WaitGroup acceptor_done;
  gort::WaitGroup hub_done;
};

// Sends to the hub; false once the hub is gone (stop).
bool tell_hub(Shared& shared, Event event) {
  try {
    shared.events.send(std::move(event));
    return true;
  } catch (const gort::ChanClosed&) {
    return false;
  }
}

class Hub {
 public:
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
    for (auto& [id, client] : clients_) disconnect(*client);
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
  }
  void handle(Refuse& e) {
    auto it = clients_.find(e.id);
    if (it != clients_.end()) deliver(e.id, *it->second, refusal_);
  }
  void handle(Stop&) {}

  void deliver(int id, Client& to, Message message) {
    std::size_t size = message->size();
    if (to.queued_bytes.load(std::memory_order_relaxed) + size > chat::kMaxQueued) return drop(id, to);
    to.queued_bytes.fetch_add(size, std::memory_order_relaxed);
    if (!to.outbox.try_send(std::move(message))) drop(id, to);
  }
  // The room does not wait for a client that is kOutbox messages behind:
  // its writer says why and closes the connection (write_client), its
  // reader then sees it closed and sends a Leave the hub ignores.
  void drop(int id, Client& to) {
    std::fprintf(stderr, "chat_fiber: user %d is not reading; disconnected\n", id);
    to.dropped.store(true, std::memory_order_relaxed);
    // Bounds a write the writer is parked in now (the socket is full) and
    // the farewell; applies to calls in progress (tcp.h).
    (void)to.conn.set_write_deadline(gort::net::Clock::now() + kFarewell);
    to.outbox.close();
    clients_.erase(id);
  }
  // The writer sees its outbox closed, the reader its Conn closed; both end.
  static void disconnect(Client& client) {
    client.outbox.close();
    (void)client.conn.close();
  }

  std::map<int, std::shared_ptr<Client>> clients_;  // the room, by id
  const Message refusal_ = std::make_shared<const std::string>(dumb::kLineTooLong);
};

void read_client(Shared& shared, Client& client, std::chrono::milliseconds idle_timeout) {
  auto buf = std::make_unique<char[]>(kReadBuffer);
  dumb::LineFramer framer(chat::kMaxLine);
  const std::string prefix = "[User " + std::to_string(client.id) + "]: ";
  for (bool hub_there = true; hub_there;) {
    if (idle_timeout.count() > 0) (void)client.conn.set_read_deadline(gort::net::Clock::now() + idle_timeout);
    auto n = client.conn.read(buf.get(), kReadBuffer);
    if (!n) {
      // Silent past --idle-timeout: the Leave makes the hub close the
      // connection (the writer may be in a write: no farewell is sent).
      (void)tell_hub(shared, Leave{client.id});
      break;
    }
    std::string_view in(buf.get(), *n);
    while (hub_there) {
      auto frame = framer.next(in);
      if (!frame) break;
      if (frame->kind == dumb::Frame::Kind::TooLong) {
        hub_there = tell_hub(shared, Refuse{client.id});
      } else {
        std::string text;
        text.reserve(prefix.size() + frame->line.size() + 1);
        text.append(prefix).append(frame->line).push_back('\n');
        hub_there = tell_hub(shared, Say{client.id, std::make_shared<const std::string>(std::move(text))});
      }
    }
  }
}

// Receives a message, takes whatever else is already queued (up to
// kWriteBatch bytes) and writes it all with one write_all: one syscall for a
// burst, so a reader keeping up with the room is never the bottleneck.
// When the hub drops the client, the queued rest is skipped and the client
// is told why (best effort: its socket may be full until kFarewell).
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
    if (!client.conn.write_all(batch)) break;
  }
  if (client.dropped.load(std::memory_order_relaxed)) (void)client.conn.write_all(kDropped);
  (void)client.conn.close();  // the reader sees it and tells the hub
}

// Runs body on a new fiber counted in shared.active.
template <class F>
void spawn_counted(Shared& shared, F body) {
  shared.active.fetch_add(1, std::memory_order_relaxed);
  go_spawn([&shared, body = std::move(body)]() mutable {
    body();
    shared.active.fetch_sub(1, std::memory_order_release);  // last access; pairs with drain's acquire
  });
}

void accept_loop(Shared& shared, dumb::FiberServer& server) {
  for (int next_id = 1;;) {
    auto conn = server.listener().accept();
    if (!conn) {
      if (conn.error() == gort::net::Errc::kClosed) break;
      std::fprintf(stderr, "chat_fiber: accept: %s\n", conn.error().message().c_str());
      gort::sleep_for(std::chrono::milliseconds(10));
      continue;
    }
    int sndbuf = chat::kSendBuffer;  // fixed, as room.h: bounds what a slow client holds
    setsockopt(conn->native_handle(), SOL_SOCKET, SO_SNDBUF, &sndbuf, sizeof sndbuf);
    const dumb::ServerConfig& config = server.config();
    if (shared.clients.load(std::memory_order_relaxed) >= config.max_connections) {
      dumb::refuse_busy(*conn);  // answered and closed, not left in the backlog
      continue;
    }
    shared.clients.fetch_add(1, std::memory_order_relaxed);
    auto client = std::make_shared<Client>(next_id++, std::move(*conn));
    if (!tell_hub(shared, Join{client})) break;
    spawn_counted(shared, [&shared, client, idle = config.idle_timeout] {
      read_client(shared, *client, idle);
      shared.clients.fetch_sub(1, std::memory_order_relaxed);
    });
    spawn_counted(shared, [client] { write_client(*client); });
  }
}

int serve(dumb::FiberServer& server) {
  Shared shared;
  shared.acceptor_done.add(1);
  shared.hub_done.add(1);
  spawn_counted(shared, [&] {
    Hub().run(shared);
    shared.hub_done.done();
  });
  spawn_counted(shared, [&] {
    accept_loop(shared, server);
    if (!shared.stopping.load(std::memory_order_relaxed)) server.fail();  // the acceptor died
    shared.acceptor_done.done();
  });
  bool signalled = server.wait_for_stop();
  shared.stopping.store(true, std::memory_order_relaxed);  // the Listener's close orders it for the acceptor
  (void)server.listener().close();
  shared.acceptor_done.wait();
  (void)tell_hub(shared, Stop{});
  shared.hub_done.wait();
  shared.events.close();  // readers still sending get ChanClosed; buffered events are dropped
  server.drain(shared.active);
  return signalled ? 0 : 1;
}

}  // namespace

int main(int argc, char** argv) { return dumb::fiber_server_main(argc, argv, "chat_fiber", serve); }
