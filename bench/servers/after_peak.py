#!/usr/bin/env python3
"""Memory back after a peak: a DUMB server's resident set before, at and
after a peak of connections that all closed.

    python3 bench/servers/after_peak.py [--connections 20000] [--after 2,10,30]
                                        [--out DIR] NAME=COMMAND [NAME=COMMAND ...]

    python3 bench/servers/after_peak.py \\
        "fiber=build/release/apps/dumb_fiber" \\
        "fiber-no-scavenger=GORT_SCAVENGE_MS=0 build/release/apps/dumb_fiber"

NAME=COMMAND is read as by ab.py (leading VAR=value words set the
environment); "--host 127.0.0.1 --port 0" is appended and the port is read
from the server's "listening on" line.  For each variant in turn: the server
starts; one client's PING is answered (the server is warm: its runtime, its
listeners and one connection have run); RSS is read ("before"); then
--connections clients connect, each sends PING and reads its PONG, all stay
open ("peak", read with every client up) and all close at once; RSS is read
again at each of --after seconds after the close.  The ratio the issue sets a
target for is the last reading over "before".

Bounded: connections in batches of 500 with a 30 s bound per batch's
replies, --after at most 120 s, the server stopped with SIGTERM (SIGKILL
after 10 s).  Only 127.0.0.1.  Exit status: 0 when every variant measured,
1 otherwise, 2 on a usage error.
"""
import argparse
import json
import os
import resource
import selectors
import socket
import subprocess
import sys
import time
from pathlib import Path

import ab
import procstat
import run

BATCH = 500
BATCH_BOUND = 30.0


def log(msg):
    print(f"[after-peak {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def rss_kib(pid):
    return procstat.read_status_kib(pid, ("VmRSS",))["VmRSS"]


def start(words, env):
    proc = subprocess.Popen(words + ["--host", "127.0.0.1", "--port", "0"], env={**os.environ, **env}, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    line = proc.stdout.readline()
    if " listening on " not in line:
        proc.kill()
        raise RuntimeError(f"did not start: {line!r} {proc.stderr.read()[-500:]!r}")
    return proc, int(line.strip().rsplit(":", 1)[1])


def ping_all(port, n):
    """Opens n clients, each PINGs and reads PONG; returns them, open."""
    clients = []
    while len(clients) < n:
        batch = []
        for _ in range(min(BATCH, n - len(clients))):
            s = socket.create_connection(("127.0.0.1", port), timeout=BATCH_BOUND)
            s.setblocking(False)
            batch.append(s)
        sel = selectors.DefaultSelector()
        for s in batch:
            s.send(b"PING\n")
            sel.register(s, selectors.EVENT_READ, bytearray())
        waiting, deadline = len(batch), time.monotonic() + BATCH_BOUND
        while waiting:
            left = deadline - time.monotonic()
            if left <= 0:
                raise RuntimeError(f"{waiting} of a batch of {len(batch)} PINGs unanswered in {BATCH_BOUND:.0f} s")
            for key, _ in sel.select(left):
                data = key.fileobj.recv(64)
                if not data:
                    raise RuntimeError("the server closed a client before its PONG")
                key.data.extend(data)
                if key.data.endswith(b"\n"):
                    if bytes(key.data) != b"PONG\n":
                        raise RuntimeError(f"reply {bytes(key.data)!r}, not PONG")
                    sel.unregister(key.fileobj)
                    waiting -= 1
        sel.close()
        clients.extend(batch)
    return clients


def measure(name, words, env, connections, after):
    proc, port = start(words, env)
    try:
        for s in ping_all(port, 1):
            s.close()
        time.sleep(0.5)
        before = rss_kib(proc.pid)
        log(f"{name}: {before / 1024:.1f} MB before; {connections} clients")
        clients = ping_all(port, connections)
        peak = rss_kib(proc.pid)
        for s in clients:
            s.close()
        closed_at = time.monotonic()
        readings = {}
        for t in after:
            time.sleep(max(0.0, closed_at + t - time.monotonic()))
            readings[t] = rss_kib(proc.pid)
            log(f"{name}: {readings[t] / 1024:.1f} MB {t} s after the close")
        return {"before_kib": before, "peak_kib": peak, "after_kib": {str(t): v for t, v in readings.items()},
                "ratio": readings[after[-1]] / before}
    finally:
        run.stop_server(proc)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--connections", type=int, default=20000)
    ap.add_argument("--after", default="2,10,30", help="seconds after the close to read RSS (default 2,10,30)")
    ap.add_argument("--out", type=Path, help="write after_peak.json there")
    ap.add_argument("variants", nargs="+", metavar="NAME=COMMAND")
    args = ap.parse_args()
    after = sorted(float(x) if "." in x else int(x) for x in args.after.split(","))
    if not after or after[-1] > 120 or after[0] < 0 or args.connections < 1:
        ap.error("--after: seconds in [0, 120]; --connections >= 1")
    need = args.connections + 256
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < need:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (need, max(hard, need)))
        except (ValueError, OSError):
            ap.error(f"--connections {args.connections} needs {need} open files; the limit is {soft}")
    results, ok = {}, True
    for spec in args.variants:
        try:
            name, env, words = ab.parse_variant(spec)
        except ValueError as e:
            ap.error(str(e))
        try:
            results[name] = measure(name, words, env, args.connections, after)
        except (RuntimeError, OSError) as e:
            log(f"{name}: failed: {e}")
            results[name] = {"failure": str(e)}
            ok = False
    cols = [f"{t} s after" for t in after]
    print(f"RSS in MB, {args.connections} connections that all closed")
    print("| variant | before | peak | " + " | ".join(cols) + " | last/before |")
    print("|---|---:|---:|" + "---:|" * len(cols) + "---:|")
    for name, r in results.items():
        if "failure" in r:
            print(f"| {name} | failed: {r['failure']} |")
            continue
        cells = [f"{r['after_kib'][str(t)] / 1024:.1f}" for t in after]
        print(f"| {name} | {r['before_kib'] / 1024:.1f} | {r['peak_kib'] / 1024:.1f} | " + " | ".join(cells) +
              f" | {r['ratio']:.2f} |")
    if args.out:
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / "after_peak.json").write_text(json.dumps(
            {"connections": args.connections, "after_s": after, "results": results}, indent=2) + "\n")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
