// wait_reason.h: why a fiber is parked (Go's waitReason).
//
// Every park names its reason; the parking fiber stores it in its own
// control block just before it switches out (park.h), with the time the
// wait began, and the fiber dump (<gort/debug.h>), the deadlock report and
// gdb's `gort fibers` show it. The value is meaningful only while the fiber
// is kParked: nothing clears it on a wake-up (that would cost the wake path
// a store), so a runnable or running fiber still holds its last reason.
//
// Timers, tickers and gort::Context::done() are channels: a fiber waiting
// on one shows kChanReceive, or kSelect when it waits among other cases.
#pragma once

#include <cstddef>
#include <cstdint>

namespace gort::detail {

enum class WaitReason : uint8_t {
  kNone,            // never parked
  kChanSend,        // Chan::send on a full channel with no receiver
  kChanReceive,     // Chan::recv on an empty channel with no sender
  kChanSendNil,     // gort::send on a null (nil) channel: forever
  kChanReceiveNil,  // gort::recv on a null (nil) channel: forever
  kSelect,          // gort::select with no ready case
  kSelectNoCases,   // select over nothing but nil channels: forever
  kSleep,           // sleep_for / sleep_until
  kMutex,           // Mutex::lock
  kCondVar,         // CondVar::wait
  kWaitGroup,       // WaitGroup::wait
  kIoRead,          // a descriptor to become readable (Fiber::wait_fd)
  kIoWrite,         // a descriptor to become writable (Fiber::wait_fd)
  kAccept,          // a listener's next connection (Fiber::wait_fd)
  kConnect,         // a connection to complete (Fiber::wait_fd)
  kBlockingCall,    // gort::blocking: the call runs on a helper thread
};

// How many reasons there are (kBlockingCall is the last): for tables by reason.
inline constexpr std::size_t kWaitReasons = std::size_t(WaitReason::kBlockingCall) + 1;

// Short lower-case text, as Go prints it ("chan receive", "I/O read").
const char* wait_reason_name(WaitReason r);
// The reasons whose wait is on a descriptor (the dump shows Fiber::wait_fd).
constexpr bool waits_on_fd(WaitReason r) {
  return r == WaitReason::kIoRead || r == WaitReason::kIoWrite || r == WaitReason::kAccept || r == WaitReason::kConnect;
}

}  // namespace gort::detail
