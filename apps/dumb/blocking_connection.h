// dumb/blocking_connection.h -- one DUMB connection served with blocking
// read/write/sleep on the calling thread.
//
// The servers that give a connection a whole thread of control (iterative,
// thread per connection, thread pool, pre-forked processes) differ only in
// where that thread comes from; this is the loop they all run.  BURN runs on
// the calling thread's stack, so the caller must provide ~3 MB of it
// (common::kServerStackBytes).
//
// Costs per request: one read() per buffer of pipelined requests, one write()
// per reply (a STREAM: one per 64 KiB chunk), a poll() per WAIT (it ends
// early if the peer resets: the connection is freed at once).
// Memory: a 16 KiB read buffer on the stack plus the Session (<= 1025 bytes
// of partial line).  Backpressure: write() blocks, so nothing is read while a
// reply is pending.

#pragma once

#include "common/server_main.h"

namespace dumb {

// Serves `fd` until EOF, an I/O error or a stop (after finishing the request
// in progress); then closes it.  Tracks it in ctx for the stop protocol.
void serve_blocking_connection(common::ServerContext& ctx, int fd);

// Accepts a connection and serves it to the end, then the next, until a stop
// (the iterative server, and each of prefork's processes).
void serve_connections_in_turn(common::ServerContext& ctx);

}  // namespace dumb
