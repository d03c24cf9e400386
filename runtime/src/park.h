// park.h: the parking primitive under every blocking operation.
//
// park(why, unlock, arg) suspends the running fiber. After its registers
// are saved and the worker is back on its own stack, the worker marks it
// kParked and calls unlock(arg): that is the moment the fiber may be published to a
// waker (release a wait-queue lock, add a timer, arm the poller). If unlock
// returns false the park is cancelled and the fiber is runnable again at
// once. ready(f) makes a parked fiber runnable; exactly one party may call it
// per park, the one that took the fiber off whatever it waited on.
//
// Because the fiber is already switched out when any waker can reach it, a
// ready() can never race with the fiber still running on its old stack, and a
// wake-up between "decide to sleep" and "sleep" cannot be lost: the decision
// and the publication happen under the waker's lock, and the lock is only
// released by unlock(). This is Go's gopark(unlockf)/goready.
//
// Every park names why (WaitReason, <gort/detail/wait_reason.h>), as
// gopark takes a waitReason: the fiber stores it, with the cycle counter,
// in its control block before it switches out (Fiber::note_wait). A
// parameter rather than a separate call before the park, so that no
// parking site can forget it; no default, for the same reason.
#pragma once

#include <gort/detail/spinlock.h>

#include "fiber.h"

namespace gort::detail {

struct Worker;

void park(WaitReason why, bool (*unlock)(void* arg), void* arg);
// The same, for a caller that already holds its worker (read since its last
// suspension): saves the thread-local read.
void park_on(Worker* w, WaitReason why, bool (*unlock)(void* arg), void* arg);
// park_on(w, why, unlock, &lock) where the unlock step releases `lock` (never
// cancels): block()'s case, without an indirect call after the switch.
void park_releasing(Worker* w, Spinlock& lock, WaitReason why) GORT_RELEASE(lock);
void ready(Fiber* f);

}  // namespace gort::detail
