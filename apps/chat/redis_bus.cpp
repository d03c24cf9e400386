// chat/redis_bus.cpp -- see redis_bus.h.

#include "chat/redis_bus.h"

#include <cstdio>
#include <mutex>
#include <random>

namespace chat {

using namespace std::chrono_literals;

namespace {

constexpr auto kFirstRetry = 100ms;
constexpr auto kMaxRetry = 5s;
const char* const kUsersKey = "gort:chat:users";
const char* const kNodesKey = "gort:chat:nodes";

std::string random_node_tag() {
  std::random_device rd;
  char buf[17];
  std::snprintf(buf, sizeof buf, "%08x%08x", rd(), rd());
  return buf;
}

}  // namespace

RedisBus::RedisBus(std::string host, int port, std::function<void(std::string)> deliver, std::string channel)
    : host_(std::move(host)),
      port_(port),
      channel_(std::move(channel)),
      deliver_(std::move(deliver)),
      node_(random_node_tag()) {}

RedisBus::~RedisBus() { stop(); }

void RedisBus::start() {
  if (started_) return;
  started_ = true;
  link_done_.add(1);
  gort::spawn(gort::SpawnOptions{0, "chat_fiber redis link"}, [this] {
    link();
    link_done_.done();
  });
}

void RedisBus::stop() {
  if (!started_ || stopped_) return;
  stopped_ = true;
  (void)stopping_.try_send(true);
  link_done_.wait();
}

void RedisBus::publish(std::string line) {
  if (!up() || !outbox_.try_send(std::move(line))) not_forwarded_.fetch_add(1, std::memory_order_relaxed);
}

int64_t RedisBus::next_user_id() {
  std::unique_lock<gort::Mutex> lock(ids_mu_);
  if (next_id_ > last_id_) {
    if (auto c = commands_) {
      lock.unlock();  // a Redis round trip: do not hold the others up behind the lock
      auto top = c->command("INCRBY %s %lld", kUsersKey, static_cast<long long>(kIdBlock));
      lock.lock();
      if (top && top->type == gort::hiredis::Value::kInteger && next_id_ > last_id_) {
        last_id_ = top->integer;
        next_id_ = top->integer - kIdBlock + 1;
      }
    }
  }
  if (next_id_ <= last_id_) return next_id_++;
  // Redis is unreachable: this node's own range.
  return (node_number_ << 20) + (++local_next_ & ((int64_t(1) << 20) - 1));
}

// Connects both connections and subscribes; false (and nothing kept) if
// any step fails.
bool RedisBus::connect_once() {
  auto c = gort::hiredis::Connection::connect(host_, port_);
  if (!c) return false;
  auto sub = gort::hiredis::Subscriber::connect(host_, port_);
  if (!sub || !(*sub)->subscribe(channel_)) return false;
  std::shared_ptr<gort::hiredis::Connection> shared(std::move(*c));
  if (node_number_ == 0) {
    auto n = shared->command("INCR %s", kNodesKey);
    if (n && n->type == gort::hiredis::Value::kInteger) {
      std::lock_guard<gort::Mutex> lock(ids_mu_);
      node_number_ = n->integer;
    }
  }
  {
    std::lock_guard<gort::Mutex> lock(ids_mu_);
    commands_ = shared;
  }
  up_.store(true, std::memory_order_release);
  uint64_t missed = not_forwarded_.exchange(0, std::memory_order_relaxed);
  std::fprintf(stderr, "chat_fiber: connected to redis %s:%d; the room is shared with the other nodes\n", host_.c_str(),
               port_);
  if (missed > 0)
    std::fprintf(stderr, "chat_fiber: %llu lines said here while redis was unreachable did not reach the other nodes\n",
                 static_cast<unsigned long long>(missed));
  // Serve until the connection is lost or we stop.
  auto& messages = (*sub)->messages();
  bool stop = false;
  while (!stop) {
    gort::select(gort::on_recv(messages,
                               [&](std::optional<gort::hiredis::Message> m) {
                                 if (!m) {
                                   stop = true;  // lost: the link reconnects
                                   return;
                                 }
                                 // "<node> <line>": ours came back, the rest is another node's
                                 std::size_t sp = m->payload.find(' ');
                                 if (sp == std::string::npos || m->payload.compare(0, sp, node_) == 0) return;
                                 deliver_(m->payload.substr(sp + 1));
                               }),
                 gort::on_recv(outbox_,
                               [&](std::optional<std::string> line) {
                                 if (!line) return;
                                 auto r = shared->command_argv({"PUBLISH", channel_, node_ + " " + *line});
                                 if (!r) stop = true;
                               }),
                 gort::on_recv(stopping_, [&](std::optional<bool>) {
                   (void)stopping_.try_send(true);  // link() sees it too
                   stop = true;
                 }));
  }
  up_.store(false, std::memory_order_release);
  {
    std::lock_guard<gort::Mutex> lock(ids_mu_);
    commands_.reset();
  }
  return true;
}

void RedisBus::link() {
  auto retry = std::chrono::milliseconds(kFirstRetry);
  bool was_up = false;
  for (;;) {
    if (auto s = stopping_.try_recv(); s) return;
    std::string where = host_ + ":" + std::to_string(port_);
    bool served = connect_once();
    if (auto s = stopping_.try_recv(); s) return;
    if (served) {
      retry = kFirstRetry;
      std::fprintf(stderr, "chat_fiber: lost redis %s; local chat goes on, reconnecting\n", where.c_str());
      was_up = true;
    } else if (was_up || retry == kFirstRetry) {
      std::fprintf(stderr, "chat_fiber: cannot reach redis %s; local chat goes on, retrying\n", where.c_str());
      was_up = false;
    }
    // Wait for the retry, or for stop.
    bool stop = false;
    gort::select(gort::on_recv(stopping_, [&](std::optional<bool>) { stop = true; }),
                 gort::on_recv(gort::after(retry), [](auto) {}));
    if (stop) return;
    retry = std::min(retry * 2, std::chrono::duration_cast<std::chrono::milliseconds>(kMaxRetry));
  }
}

}  // namespace chat
