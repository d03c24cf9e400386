# tools/gdb/gort.py -- gort's fibers in gdb (brpc's bthread script, for gort).
#
#   (gdb) source tools/gdb/gort.py
#   (gdb) gort fibers              every live fiber: id, state, name, and for a parked
#                                  one why it waits (and on which descriptor)
#   (gdb) gort bt ID               the backtrace of a fiber that is not running
#   (gdb) gort bt all [DEPTH]      the backtraces of every fiber that is not running
#
# Works on a live process stopped by gdb (gdb -p PID) and needs the
# program's debug information. How it finds the fibers: every fiber's
# control block is a fixed-size record of the runtime's FiberPool, all carved
# from one reservation (scheduler.cpp's g_sched -> fiber_pool.base_, and
# carved_ records so far; runtime/src/fiber_pool.h), so the script reads
# every record; a record whose id is 0 (never used, or given back) or whose
# state is kDead (its fiber returned) is not a fiber. The process is
# stopped: nothing moves meanwhile.
#
# A fiber that is not running has its registers saved by Boost.Context's
# jump_fcontext/ontop_fcontext at the address in Fiber::ctx (x86-64 System V:
# mxcsr/x87 control at +0, r12 r13 r14 r15 rbx rbp at +0x08..+0x30, the
# return address at +0x38; its stack pointer was ctx + 0x40). `gort bt`
# loads those into the selected thread's registers, prints gdb's backtrace
# and puts the thread's own registers back. A running fiber's registers are
# its worker thread's: `thread apply all bt` shows it.

import gdb

STATES = {0: "runnable", 1: "running", 2: "parked", 3: "dead"}

# gort::detail::WaitReason's enumerators as runtime/src/debug.cpp's
# wait_reason_name prints them; keyed by name, so a reordering of the enum
# does not matter.
REASONS = {
    "kNone": "unknown", "kChanSend": "chan send", "kChanReceive": "chan receive",
    "kChanSendNil": "chan send (nil chan)", "kChanReceiveNil": "chan receive (nil chan)",
    "kSelect": "select", "kSelectNoCases": "select (no cases)", "kSleep": "sleep", "kMutex": "mutex",
    "kCondVar": "condvar", "kWaitGroup": "waitgroup", "kIoRead": "I/O read", "kIoWrite": "I/O write",
    "kAccept": "accept", "kConnect": "connect", "kBlockingCall": "blocking call",
}
FD_REASONS = ("kIoRead", "kIoWrite", "kAccept", "kConnect")


def _atomic(v):
    """The value inside a libstdc++ std::atomic."""
    for path in (("_M_i",), ("_M_b", "_M_p")):
        try:
            x = v
            for field in path:
                x = x[field]
            return x
        except gdb.error:
            continue
    raise gdb.GdbError("gort.py: cannot read a std::atomic of type %s" % v.type)


def _scheduler():
    # g_sched lives in an anonymous namespace of runtime/src/scheduler.cpp.
    sym = (gdb.lookup_static_symbol("gort::detail::(anonymous namespace)::g_sched")
           or gdb.lookup_global_symbol("gort::detail::g_sched"))
    if sym is None:
        raise gdb.GdbError("gort.py: no gort runtime symbols here (built without debug information?)")
    sched = _atomic(sym.value())
    if int(sched) == 0:
        raise gdb.GdbError("gort.py: no gort runtime is running")
    return sched.dereference()


def _record_bytes():
    """fiber_pool.h's kFiberRecordBytes: from the debug information when the
    constant was emitted there, else its value when this script was written."""
    try:
        return int(gdb.parse_and_eval("gort::detail::kFiberRecordBytes"))
    except gdb.error:
        return 256


def fibers():
    """Every live fiber, as a gdb.Value of type gort::detail::Fiber."""
    pool = _scheduler()["fiber_pool"]
    base = int(pool["base_"])
    carved = int(_atomic(pool["carved_"]))
    record = _record_bytes()
    fiber_t = gdb.lookup_type("gort::detail::Fiber")
    inferior = gdb.selected_inferior()
    for k in range(carved):
        address = base + k * record
        try:
            inferior.read_memory(address, fiber_t.sizeof)
        except gdb.MemoryError:
            continue
        f = gdb.Value(address).cast(fiber_t.pointer()).dereference()
        if int(f["id"]) == 0 or int(_atomic(f["state"])) == 3:
            continue
        yield f


def _name(f):
    p = f["name"]
    return p.string() if int(p) != 0 else ""


def _wait(f):
    """Why a parked fiber waits, as the fiber dump prints it ("chan receive",
    "I/O read fd 7"); empty for a fiber that is not parked (its last reason
    is stale then)."""
    if STATES.get(int(_atomic(f["state"]))) != "parked":
        return ""
    enumerator = str(_atomic(f["wait_reason"])).split("::")[-1]
    text = REASONS.get(enumerator, enumerator)
    if enumerator in FD_REASONS:
        text += " fd %d" % int(_atomic(f["wait_fd"]))
    return "[%s]" % text


class Gort(gdb.Command):
    """gort fibers | gort bt ID: gort's fibers (tools/gdb/gort.py)."""

    def __init__(self):
        super().__init__("gort", gdb.COMMAND_USER, prefix=True)


class GortFibers(gdb.Command):
    """List every live fiber: id, state, name, and why a parked one waits."""

    def __init__(self):
        super().__init__("gort fibers", gdb.COMMAND_USER)

    def invoke(self, arg, from_tty):
        n = 0
        for f in fibers():
            n += 1
            state = STATES.get(int(_atomic(f["state"])), "?")
            line = "fiber %-8d %-9s %s %s" % (int(f["id"]), state, _name(f), _wait(f))
            gdb.write(line.rstrip() + "\n")
        gdb.write("%d fibers\n" % n)


REGISTERS = ("rsp", "rip", "rbp", "rbx", "r12", "r13", "r14", "r15")


class GortBacktrace(gdb.Command):
    """Backtrace of the fiber with id ID (not a running one), or of every such fiber (all [DEPTH])."""

    def __init__(self):
        super().__init__("gort bt", gdb.COMMAND_USER)

    def invoke(self, arg, from_tty):
        words = arg.split()
        if words and words[0] == "all":
            depth = words[1] if len(words) > 1 else ""
            for f in fibers():
                if STATES.get(int(_atomic(f["state"])), "?") != "running" and int(f["ctx"]) != 0:
                    self.show(f, depth)
            return
        try:
            wanted = int(words[0]) if words else None
        except ValueError:
            wanted = None
        if wanted is None:
            raise gdb.GdbError("usage: gort bt FIBER-ID | gort bt all [DEPTH]")
        fiber = next((f for f in fibers() if int(f["id"]) == wanted), None)
        if fiber is None:
            raise gdb.GdbError("no live fiber %d (gort fibers lists them)" % wanted)
        state = STATES.get(int(_atomic(fiber["state"])), "?")
        if state == "running":
            raise gdb.GdbError("fiber %d is running: its registers are its worker thread's (thread apply all bt)" % wanted)
        if int(fiber["ctx"]) == 0:
            raise gdb.GdbError("fiber %d has not started yet: no frames" % wanted)
        self.show(fiber, "")

    @staticmethod
    def show(fiber, depth):
        wanted = int(fiber["id"])
        state = STATES.get(int(_atomic(fiber["state"])), "?")
        ctx = int(fiber["ctx"])
        word = lambda off: int(gdb.parse_and_eval("*(unsigned long *) %d" % (ctx + off)))
        saved = {r: int(gdb.parse_and_eval("$" + r)) for r in REGISTERS}
        load = {"r12": word(0x08), "r13": word(0x10), "r14": word(0x18), "r15": word(0x20), "rbx": word(0x28),
                "rbp": word(0x30), "rip": word(0x38), "rsp": ctx + 0x40}
        gdb.write("fiber %d (%s) %s\n" % (wanted, state, _name(fiber)))
        try:
            for r, v in load.items():
                gdb.execute("set $%s = %d" % (r, v))
            gdb.execute("backtrace " + depth)
        finally:
            for r, v in saved.items():
                gdb.execute("set $%s = %d" % (r, v))


Gort()
GortFibers()
GortBacktrace()
