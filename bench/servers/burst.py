#!/usr/bin/env python3
"""A burst of connections against DUMB servers (or any server taking
--host/--port): several clients each open N connections back to back, as
fast as non-blocking connect() goes, hold them a moment and close them.
Counts the kernel's listen-queue overflows meanwhile (a SYN dropped
because the accept queue was full: the client retries it a second later)
and the time until every connection was established.

    python3 bench/servers/burst.py [--clients 2] [--connections 9000]
                                   [--rounds 3] [--json]
                                   NAME=COMMAND [NAME=COMMAND ...]

Each COMMAND is a server command line (split as a shell would) to which
"--host 127.0.0.1 --port P" is appended, for example

    python3 bench/servers/burst.py \\
        "fiber=build/release/apps/dumb_fiber" \\
        "epoll=build/release/apps/dumb_epoll_workers" \\
        "go=build/release/bench/go-dumb"

The variants run in rounds, in ABBA order.  Overflows are read from
/proc/net/netstat (TcpExt ListenOverflows), which counts the whole network
namespace: run it on an otherwise quiet machine.  The clients and the
server need clients x connections descriptors (RLIMIT_NOFILE is raised to
the hard limit).  Only 127.0.0.1 is used; every run is bounded in time.

Output: one line per run on stderr; a table of medians (and the per-round
figures) on stdout, or one JSON object with --json.  Exit status 0, or 2
on a usage error.
"""

import argparse
import json
import os
import resource
import selectors
import shlex
import socket
import statistics
import subprocess
import sys
import time


def listen_overflows():
    with open("/proc/net/netstat") as f:
        lines = f.read().splitlines()
    for names, values in zip(lines[::2], lines[1::2]):
        if names.startswith("TcpExt:"):
            table = dict(zip(names.split()[1:], values.split()[1:]))
            return int(table.get("ListenOverflows", 0))
    return 0


def client(port, n, hold_s):
    """One client, in a child process: n connects, then waits (bounded) for
    all to complete; prints the seconds that took."""
    start = time.monotonic()
    socks = []
    for _ in range(n):
        s = socket.socket()
        s.setblocking(False)
        try:
            s.connect(("127.0.0.1", port))
        except BlockingIOError:
            pass
        socks.append(s)
    sel = selectors.DefaultSelector()
    for s in socks:
        sel.register(s, selectors.EVENT_WRITE)
    pending, failed = n, 0
    deadline = start + 20
    while pending and time.monotonic() < deadline:
        for key, _ in sel.select(timeout=0.5):
            failed += key.fileobj.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR) != 0
            sel.unregister(key.fileobj)
            pending -= 1
    took = time.monotonic() - start
    time.sleep(hold_s)
    for s in socks:
        s.close()
    print(json.dumps({"seconds": took, "failed": failed, "unfinished": pending}))


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_listening(port, proc, bound_s=10):
    deadline = time.monotonic() + bound_s
    while time.monotonic() < deadline and proc.poll() is None:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return True
        except OSError:
            time.sleep(0.05)
    return False


def one_run(command, clients, connections):
    port = free_port()
    server = subprocess.Popen(shlex.split(command) + ["--host", "127.0.0.1", "--port", str(port)],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        if not wait_listening(port, server):
            return None
        time.sleep(0.3)
        before = listen_overflows()
        procs = [subprocess.Popen([sys.executable, __file__, "--client", str(port), str(connections)],
                                  stdout=subprocess.PIPE, text=True) for _ in range(clients)]
        results = [json.loads(p.communicate(timeout=60)[0]) for p in procs]
        return {
            "overflows": listen_overflows() - before,
            "all_up_s": max(r["seconds"] for r in results),
            "failed": sum(r["failed"] + r["unfinished"] for r in results),
        }
    finally:
        server.terminate()
        try:
            server.wait(timeout=10)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()


def main():
    if len(sys.argv) == 4 and sys.argv[1] == "--client":
        resource.setrlimit(resource.RLIMIT_NOFILE, (resource.getrlimit(resource.RLIMIT_NOFILE)[1],) * 2)
        client(int(sys.argv[2]), int(sys.argv[3]), hold_s=1.0)
        return 0
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--clients", type=int, default=2)
    ap.add_argument("--connections", type=int, default=9000, help="per client")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--json", action="store_true")
    ap.add_argument("variants", nargs="+", metavar="NAME=COMMAND")
    args = ap.parse_args()
    variants = []
    for v in args.variants:
        name, sep, command = v.partition("=")
        if not sep or not name or not command:
            ap.error(f"not NAME=COMMAND: {v!r}")
        variants.append((name, command))
    if args.clients < 1 or args.connections < 1 or args.rounds < 1:
        ap.error("--clients, --connections and --rounds must be positive")
    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    if hard != resource.RLIM_INFINITY and hard < args.connections + 100:
        ap.error(f"RLIMIT_NOFILE hard limit {hard} < {args.connections + 100}")

    runs = {name: [] for name, _ in variants}
    for r in range(args.rounds):
        order = variants if r % 2 == 0 else variants[::-1]
        for name, command in order:
            result = one_run(command, args.clients, args.connections)
            print(f"round {r + 1} {name}: {result}", file=sys.stderr)
            if result:
                runs[name].append(result)
    summary = {}
    for name, results in runs.items():
        if not results:
            summary[name] = None
            continue
        summary[name] = {
            "overflows_median": statistics.median(x["overflows"] for x in results),
            "runs_with_overflows": sum(x["overflows"] > 0 for x in results),
            "all_up_s_median": statistics.median(x["all_up_s"] for x in results),
            "failed": sum(x["failed"] for x in results),
            "runs": results,
        }
    if args.json:
        print(json.dumps({"clients": args.clients, "connections": args.connections, "variants": summary}))
        return 0
    print(f"{args.clients} clients x {args.connections} connections, {args.rounds} rounds (medians)")
    print(f"{'server':<16} {'overflows':>10} {'runs with':>10} {'all up (s)':>11} {'failed':>7}")
    for name, s in summary.items():
        if s is None:
            print(f"{name:<16} did not start")
            continue
        print(f"{name:<16} {s['overflows_median']:>10.0f} {s['runs_with_overflows']:>7}/{len(s['runs'])}"
              f" {s['all_up_s_median']:>11.2f} {s['failed']:>7}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
