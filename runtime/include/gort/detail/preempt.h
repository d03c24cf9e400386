// preempt.h: the time-slice check at runtime calls that did not block.
//
// The runtime's monitor asks a fiber that has held its worker for a time
// slice to yield (runtime/src/monitor.h). It cannot interrupt C++ code at
// an arbitrary instruction, so every runtime call that returns without
// parking (a read that found data, a send with room, a spawn, an
// uncontended lock) calls preemption_point(): one load of the worker's
// state, and a yield if the slice ran out. Public only because the inline
// Mutex::lock and gort::net (a separate library) call it.
#pragma once

namespace gort::detail {

// Yields if the monitor asked the calling fiber to; a no-op outside fibers,
// inside on_worker_stack, and when no request is pending.
void preemption_point();

// Yields to the back of the calling worker's queue if other fibers wait in
// it; true if it did. A no-op (false) outside fibers and on the worker's
// stack. For gort::net: a reader whose last read drained the socket lets
// the queued fibers run before it reads again (net_fd.cpp).
bool yield_if_others_queued();

}  // namespace gort::detail
