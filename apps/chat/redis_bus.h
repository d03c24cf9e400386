// chat/redis_bus.h -- chat lines between chat_fiber nodes through Redis
// pub/sub (chat_fiber --redis HOST:PORT; docs/DEPLOYMENT.md).
//
// Design
//  * Every node subscribes to one Redis channel (the room) and publishes
//    its own users' lines there, tagged with a node id drawn at start; a
//    node drops what it published itself (its users already have it from
//    the local hub) and hands the rest to `deliver`, in the order Redis sent
//    them: one publisher connection per node, so a sender's lines stay in
//    order.
//  * User numbers come from Redis (INCRBY on one key, a block of
//    kIdBlock at a time), so they are unique across nodes. While Redis is
//    unreachable a node goes on numbering from its own range: its node
//    number (INCR once, at the first connection) times 2^20 -- still
//    unique across nodes, just larger. A node that never reached Redis has
//    node number 0: its numbers then count its own users only.
//  * The link fiber connects, subscribes, and on a lost connection says so
//    on stderr, retries with a doubling backoff (kFirstRetry .. kMaxRetry)
//    and subscribes again. Local chat never waits for Redis: publish() only
//    try_sends to a bounded outbox, and a line said while Redis is down or
//    far behind is not forwarded (counted, and said once back up).
//  * Lines that crossed while a node was cut off are not replayed: pub/sub
//    keeps nothing, and a late line out of its conversation would mislead.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include <gort/gort.h>
#include <gort/hiredis.h>

namespace chat {

class RedisBus {
 public:
  RedisBus(std::string host, int port, std::function<void(std::string line)> deliver,
           std::string channel = "gort:chat:room");
  ~RedisBus();  // stop()s; in a fiber
  RedisBus(const RedisBus&) = delete;
  RedisBus& operator=(const RedisBus&) = delete;

  void start();                    // spawns the link fiber
  void stop();                     // ends it and waits; the destructor calls it
  void publish(std::string line);  // from any fiber, never waits
  int64_t next_user_id();          // parks the caller for Redis when a block runs out
  bool up() const { return up_.load(std::memory_order_acquire); }

  static constexpr int64_t kIdBlock = 64;

 private:
  void link();
  bool connect_once();
  void serve_connected();

  const std::string host_;
  const int port_;
  const std::string channel_;
  const std::function<void(std::string)> deliver_;
  const std::string node_;                // this node's tag on what it publishes
  gort::Chan<std::string> outbox_{4096};  // lines to publish
  gort::Chan<bool> stopping_{1};
  gort::WaitGroup link_done_;
  std::atomic<bool> up_{false};
  std::atomic<uint64_t> not_forwarded_{0};               // lines said while down or full
  gort::Mutex ids_mu_;                                   // the fields below
  std::shared_ptr<gort::hiredis::Connection> commands_;  // null while down; copied out under ids_mu_
  int64_t next_id_ = 0, last_id_ = -1;                   // the block in hand: [next_id_, last_id_]
  int64_t node_number_ = 0;                              // 0 until Redis gave one
  int64_t local_next_ = 0;                               // fallback numbering
  bool started_ = false, stopped_ = false;
};

}  // namespace chat
