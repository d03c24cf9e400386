// dumb_iterative -- the simplest DUMB server: accept a connection, serve it
// to the end, accept the next.
//
// One thread (with an 8 MiB stack for BURN), no shared state.  While one
// client is connected every other client waits in the kernel's listen
// backlog: a WAIT, a slow STREAM reader or a slow sender starves everyone
// (the scenario suite asserts exactly that).  It is the baseline the other
// architectures are measured against.

#include "dumb/blocking_connection.h"

int main(int argc, char** argv) {
  return common::server_main(argc, argv, "dumb_iterative", dumb::serve_connections_in_turn);
}
