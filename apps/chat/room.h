// chat/room.h -- the chat room that select_chat and epoll_chat share: the
// clients, line framing, broadcast and the bounded output per client.  The
// servers are only their readiness loops around it.
//
// Protocol (port 8091, usable with nc): on connect a client receives
// "Welcome chat user no. <id>!\n" (ids count from 1); every line it sends
// ("\n" or "\r\n" ends a line) is sent to every *other* client as
// "[User <id>]: <line>\n".  A line over kMaxLine (1024) bytes is not relayed:
// its sender alone gets "ERROR line too long\n" and the rest of that line is
// discarded (common::LineFramer rules, docs/PROTOCOL.md "Framing").  A partial
// last line at disconnect is dropped.
//
// Slow clients: a message is written straight to the socket when nothing is
// queued for the client; what the socket does not take is queued, up to
// kMaxQueued bytes per client.  A client whose queue would exceed that is
// disconnected -- it is not keeping up with the room, and waiting for it
// would either stall everyone or grow memory without bound.  The socket's own
// send buffer is fixed at kSendBuffer (no autotuning), so a client costs at
// most ~kMaxQueued + 2 * kSendBuffer bytes.
//
// Invariant: a client is closed only by reap(), between events, so a loop
// never touches a closed descriptor mid-iteration.

#pragma once

#include <cstddef>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "common/line_framer.h"

namespace chat {

inline constexpr std::size_t kMaxLine = 1024;
inline constexpr std::size_t kMaxQueued = 256 * 1024;
inline constexpr int kSendBuffer = 32 * 1024;

struct Client {
  explicit Client(int fd, int id) : fd(fd), id(id) {}
  int fd;
  int id;                               // "User <id>"
  common::LineFramer framer{kMaxLine};  // partial line (<= 1025 bytes)
  std::string queued;                   // output the socket has not taken yet (<= kMaxQueued)
  bool gone = false;                    // to be closed by reap()
};

class Room {
 public:
  Room() = default;
  Room(const Room&) = delete;
  Room& operator=(const Room&) = delete;
  ~Room();  // closes every client

  // Adds a nonblocking connection and greets it.
  Client& join(int fd);
  // The client's socket is readable: read, relay its complete lines.
  void on_readable(Client& client);
  // The client's socket is writable: send what is queued.
  void on_writable(Client& client);

  // Closes the clients that are gone; returns their descriptors (already
  // closed: for bookkeeping only).
  std::vector<int> reap();
  // Descriptors whose queue went from empty to non-empty or back since the
  // last call (an epoll loop changes their EPOLLOUT interest).
  std::vector<int> take_write_changes();

  std::map<int, Client>& clients() noexcept { return clients_; }

 private:
  void deliver(Client& to, std::string_view message);
  void relay(const Client& from, std::string_view line);

  std::map<int, Client> clients_;  // by fd
  std::vector<int> write_changes_;
  int next_id_ = 1;
};

}  // namespace chat
