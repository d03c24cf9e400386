// export_test.h: the internals tests may reach (Go's export_test.go). Tests
// include this and nothing else from runtime/src.
#pragma once

#include "netpoll.h"
#include "platform.h"
#include "scheduler.h"
#include "stack.h"
#include "timer_heap.h"

namespace gort::detail {

// Asks the calling fiber to yield at its next preemption point, as the
// monitor does once it has held its worker for a time slice (monitor.h),
// without waiting a slice for it. From a fiber.
inline void request_preemption() { current_worker()->preempt_flag.store(true, std::memory_order_relaxed); }

}  // namespace gort::detail
