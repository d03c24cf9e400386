// dumb_iterative -- the simplest DUMB server: accept a connection, serve it
// to the end, accept the next.
//
// One thread (with an 8 MiB stack for BURN), no shared state.  While one
// client is connected every other client waits in the kernel's listen
// backlog: a WAIT, a slow STREAM reader or a slow sender starves everyone
// (the scenario suite asserts exactly that).  It is the baseline the other
// architectures are measured against.

#include "dumb/blocking_connection.h"

namespace {

void serve(dumb::ServerContext& ctx) {
  for (;;) {
    int fd = ctx.accept_connection(/*nonblocking=*/false);
    if (fd >= 0) {
      dumb::serve_blocking_connection(ctx, fd);
    } else if (ctx.stopping()) {
      return;
    }
    // else: out of descriptors; accept_connection refused one, try again
  }
}

}  // namespace

int main(int argc, char** argv) { return dumb::server_main(argc, argv, "dumb_iterative", serve); }
