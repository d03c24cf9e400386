// debug.h: every fiber of the running program and what it waits on, as
// text (Go's goroutine dump, what SIGQUIT prints).
//
//   gort::debug::write_fibers(stderr);            // any thread, while gort::run runs
//   std::string dump = gort::debug::fibers_text();
//
// The dump lists each worker (its slot, worker or spare, the fiber it runs
// and whether the monitor counts that fiber as stuck, or "idle"), then
// every live fiber, one line each, ordered by id:
//
//   fiber 7 "reader" [I/O read fd 9 127.0.0.1:8080->127.0.0.1:40312, 1204 ms]
//   fiber 9 [chan receive, 3 ms]
//   fiber 12 [runnable]
//   fiber 1 "main" [running]
//
// A parked fiber shows why it waits (<gort/detail/wait_reason.h>: chan
// send/receive, select, sleep, mutex, condvar, waitgroup, I/O read/write,
// accept, connect with the descriptor and, for a TCP socket, its local and
// peer addresses, blocking call...) and for how long.
//
// The runtime keeps running while the dump is made: it is a snapshot in
// which each fiber is read on its own, not an instant. A fiber that parks,
// wakes, starts or returns meanwhile may show its old or its new state, or
// be missing; nothing the dump reads can fault (docs/ARCHITECTURE.md,
// "Wait reasons and the fiber dump"). Its other prerequisite: gort::run must
// not return while a dump is being made (as for gort::metrics()).
// Outside gort::run the text says that no runtime is running.
#pragma once

#include <cstdio>
#include <string>

namespace gort::debug {

std::string fibers_text();
void write_fibers(std::FILE* out);

}  // namespace gort::debug
