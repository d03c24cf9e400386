// tests/fuzz/fuzz_chat_room.cpp -- chat::Room (select_chat's and
// epoll_chat's room) fed a client's bytes in random pieces over a socket
// pair, checked against the model: every complete line of at most
// chat::kMaxLine bytes reaches the other client as "[User 1]: <line>\n",
// each longer line gets its sender one "ERROR line too long\n", and a
// partial last line reaches no one.  chat_fiber frames with the same
// LineFramer (fuzz_dumb_framer).

#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>

#include "chat/room.h"
#include "reference_framing.h"
#include "split_input.h"

namespace {

void check(bool ok) {
  if (!ok) std::abort();
}

// A connected pair: [0] the server's end (nonblocking), [1] the client's.
struct Pair {
  int fds[2] = {-1, -1};
  Pair() { check(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, fds) == 0); }
  ~Pair() { close(fds[1]); }  // fds[0] belongs to the Room
};

std::string drain(int fd) {
  std::string out;
  char buf[65536];
  for (ssize_t n; (n = read(fd, buf, sizeof buf)) > 0;) out.append(buf, std::size_t(n));
  return out;
}

int pending(int fd) {
  int n = 0;
  ioctl(fd, FIONREAD, &n);
  return n;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  fuzz::Cursor cursor(data, size);
  auto sizes = fuzz::piece_sizes(cursor);
  std::string_view input = cursor.rest();

  Pair sender, hearer;
  std::string to_sender, to_hearer;
  {
    chat::Room room;
    chat::Client& from = room.join(sender.fds[0]);
    room.join(hearer.fds[0]);
    for (std::string_view piece : fuzz::split(input, sizes)) {
      check(write(sender.fds[1], piece.data(), piece.size()) == ssize_t(piece.size()));
      while (pending(sender.fds[0]) > 0 && !from.gone) room.on_readable(from);
      // What the sockets did not take is queued in the Room until they are
      // writable again, as a loop would be told: read, then flush, until done.
      for (bool queued = true; queued;) {
        to_sender += drain(sender.fds[1]);
        to_hearer += drain(hearer.fds[1]);
        queued = false;
        for (auto& [fd, client] : room.clients()) {
          queued |= !client.queued.empty();
          room.on_writable(client);
        }
      }
    }
    check(!from.gone);
    check(room.reap().empty());
  }  // ~Room closes the server ends
  to_sender += drain(sender.fds[1]);
  to_hearer += drain(hearer.fds[1]);

  std::string want_sender = "Welcome chat user no. 1!\n", want_hearer = "Welcome chat user no. 2!\n";
  for (const auto& frame : fuzz::reference_frames(input, chat::kMaxLine)) {
    if (frame.too_long) {
      want_sender += "ERROR line too long\n";
    } else {
      want_hearer += "[User 1]: " + frame.line + "\n";
    }
  }
  check(to_sender == want_sender);
  check(to_hearer == want_hearer);
  return 0;
}
