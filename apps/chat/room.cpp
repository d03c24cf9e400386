// chat/room.cpp -- see room.h.

#include "chat/room.h"

#include <array>
#include <cerrno>
#include <cstdio>

#include <sys/socket.h>
#include <unistd.h>

namespace chat {

Room::~Room() {
  for (auto& [fd, client] : clients_) close(fd);
}

Client& Room::join(int fd) {
  setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &kSendBuffer, sizeof kSendBuffer);
  Client& client = clients_.try_emplace(fd, fd, next_id_++).first->second;
  deliver(client, "Welcome chat user no. " + std::to_string(client.id) + "!\n");
  return client;
}

void Room::deliver(Client& to, std::string_view message) {
  if (to.gone) return;
  bool was_empty = to.queued.empty();
  if (was_empty) {
    ssize_t n = write(to.fd, message.data(), message.size());
    if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) {
      to.gone = true;
      return;
    }
    if (n > 0) message.remove_prefix(static_cast<std::size_t>(n));
  }
  if (message.empty()) return;
  if (to.queued.size() + message.size() > kMaxQueued) {
    std::fprintf(stderr, "chat: user %d is not reading; disconnected\n", to.id);
    to.gone = true;
    return;
  }
  to.queued.append(message);
  if (was_empty) write_changes_.push_back(to.fd);
}

void Room::relay(const Client& from, std::string_view line) {
  std::string message = "[User " + std::to_string(from.id) + "]: ";
  message.append(line);
  message.push_back('\n');
  for (auto& [fd, client] : clients_)
    if (fd != from.fd) deliver(client, message);
}

void Room::on_readable(Client& client) {
  std::array<char, 4096> buf;
  for (int reads = 0; reads < 4 && !client.gone; ++reads) {  // bounded: the others get their turn, and drain
    ssize_t n = read(client.fd, buf.data(), buf.size());
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return;
    if (n <= 0) {
      client.gone = true;
      return;
    }
    std::string_view in(buf.data(), static_cast<std::size_t>(n));
    while (auto frame = client.framer.next(in)) {
      if (frame->kind == common::Frame::Kind::kTooLong) {
        deliver(client, common::kLineTooLong);
      } else {
        relay(client, frame->line);
      }
    }
  }
}

void Room::on_writable(Client& client) {
  if (client.gone || client.queued.empty()) return;
  ssize_t n = write(client.fd, client.queued.data(), client.queued.size());
  if (n < 0) {
    if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) client.gone = true;
    return;
  }
  client.queued.erase(0, static_cast<std::size_t>(n));
  if (client.queued.empty()) write_changes_.push_back(client.fd);
}

std::vector<int> Room::reap() {
  std::vector<int> closed;
  for (auto it = clients_.begin(); it != clients_.end();) {
    if (it->second.gone) {
      close(it->first);
      closed.push_back(it->first);
      it = clients_.erase(it);
    } else {
      ++it;
    }
  }
  return closed;
}

std::vector<int> Room::take_write_changes() {
  std::vector<int> changes;
  changes.swap(write_changes_);
  return changes;
}

}  // namespace chat
