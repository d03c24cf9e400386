// net.h: gort::net, TCP for fibers. See net/tcp.h, and net/server.h for a
// server with a graceful shutdown.
#pragma once

#include <gort/net/address.h>
#include <gort/net/debug.h>
#include <gort/net/poll_fd.h>
#include <gort/net/result.h>
#include <gort/net/server.h>
#include <gort/net/tcp.h>
