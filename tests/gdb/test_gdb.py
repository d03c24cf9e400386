#!/usr/bin/env python3
"""tools/gdb/gort.py on a live gort program (gdb_target): `gort fibers`
lists its named fibers and why they wait, `gort bt ID` shows where a parked one waits.

    test_gdb.py GDB_TARGET PROJECT_DIR
"""

import re
import shutil
import subprocess
import sys
import time


def main():
    target, project = sys.argv[1], sys.argv[2]
    if shutil.which("gdb") is None:
        print("FAILED: gdb is not installed (scripts/install-deps installs it)")
        return 1
    proc = subprocess.Popen([target], stdout=subprocess.PIPE, text=True)
    failures = []
    try:
        socket_line = proc.stdout.readline().split()
        if proc.stdout.readline().strip() != "ready":
            print("FAILED: the target did not start")
            return 1
        def gdb(*commands):
            args = ["gdb", "-nx", "-batch", "-p", str(proc.pid), "-ex", f"source {project}/tools/gdb/gort.py"]
            for c in commands:
                args += ["-ex", c]
            return subprocess.run(args, capture_output=True, text=True, timeout=120).stdout

        listing = gdb("gort fibers")
        print(listing)
        sleeper = re.search(r"fiber (\d+)\s+parked\s+sleeper", listing)
        waiters = re.findall(r"fiber (\d+)\s+parked\s+channel waiter", listing)
        if not sleeper:
            failures.append("no parked fiber named sleeper")
        if len(waiters) != 3:
            failures.append(f"{len(waiters)} channel waiters listed, not 3")
        if not re.search(r"fiber \d+\s+parked\s+sleeper \[sleep\]\n", listing):
            failures.append("the sleeper's wait reason is not [sleep]")
        if len(re.findall(r"parked\s+channel waiter \[chan receive\]\n", listing)) != 3:
            failures.append("the channel waiters' wait reason is not [chan receive]")
        if not re.search(r"parked\s+socket reader \[I/O read fd %s\]\n" % socket_line[-1], listing):
            failures.append("the socket reader's wait is not [I/O read fd %s]" % socket_line[-1])
        if not re.search(r"\n(\d+) fibers\n", listing):
            failures.append("no count of fibers")
        if sleeper and waiters:
            bt = gdb(f"gort bt {sleeper.group(1)}", f"gort bt {waiters[0]}", "gort bt 999999")
            print(bt)
            if "sleepy_function" not in bt:
                failures.append("the sleeper's backtrace does not show sleepy_function")
            if "waiting_on_channel" not in bt:
                failures.append("a waiter's backtrace does not show waiting_on_channel")
        still = gdb("gort fibers")
        if still.count("parked") != listing.count("parked"):
            failures.append("the program's fibers changed after gort bt (registers not restored?)")
    finally:
        proc.kill()
        proc.wait()
    for f in failures:
        print("FAIL " + f)
    print("FAILED" if failures else "PASSED")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
