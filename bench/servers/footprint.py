#!/usr/bin/env python3
"""Instructions and cache misses per request of DUMB servers at one
closed-loop PING step, under callgrind's cache simulation: figures that do
not move with this machine's noise, for what CPU time per request cannot
resolve.

    python3 bench/servers/footprint.py [--connections 10000] [--warmup 4] [--window 12]
                                       [--build build/release] [--out DIR] [--json]
                                       NAME=COMMAND [NAME=COMMAND ...]

    python3 bench/servers/footprint.py \\
        "fiber=build/release/apps/dumb_fiber --workers 1" \\
        "epoll_workers=build/release/apps/dumb_epoll_workers --workers 1"

NAME=COMMAND is read as by ab.py (leading VAR=value words set the
environment); "--host 127.0.0.1 --port P" is appended.  Each variant in
turn runs under `valgrind --tool=callgrind --cache-sim=yes`, pinned to the
first half of this process's CPUs, with dumb_load (--closed-loop --cmd
PING, not under valgrind) on the rest.  After --warmup seconds with the
load running, the counters are zeroed (callgrind_control -z); --window
seconds later they are dumped.  Per request, from that dump:

  instructions   user-space instructions executed (Ir)
  D1 misses      reads and writes missing callgrind's first-level data cache
  LL misses      reads and writes missing its last-level cache, which is
                 given the size of this machine's L2 (per core), so a miss
                 is a cache line the request brought in from further away

At thousands of connections each connection's state is cold when its next
request comes, so LL misses per request are about the distinct cache lines
a request touches: its memory footprint.

Requests are the calls to dumb::parse in the window: every DUMB server of
servers.def parses each request line once with it, so a server without
that symbol (or built with it inlined, as under LTO) measures nothing.
Valgrind runs the server ~50 times slower, so dumb_load's --timeout is
60 s and the window holds far fewer requests than a real run; the figures
are per request, so that does not matter, but CPU time and latency from
such a run mean nothing and are not reported.

Output: progress on stderr; the table on stdout (on stderr with --json,
when stdout is the JSON record); footprint.json and the logs in --out.
Exit status: 0 when every variant measured, 1 otherwise, 2 on a usage
error or a missing tool.  Bounded: each variant takes warmup + window + at
most ~40 s; only 127.0.0.1 is used.
"""

import argparse
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import time
from pathlib import Path

import ab
import run
from report import log

START_BOUND = 30        # s for the server to accept under valgrind
REQUEST_FUNCTION = "dumb::parse("


def l2_geometry():
    """(size, associativity, line) of CPU 0's L2 from sysfs, or 1 MiB, 16, 64
    when it is missing or not a geometry callgrind accepts (sets a power of 2)."""
    base = Path("/sys/devices/system/cpu/cpu0/cache/index2")
    try:
        size_text = (base / "size").read_text().strip()
        size = int(size_text[:-1]) * 1024 if size_text.endswith("K") else int(size_text)
        assoc = int((base / "ways_of_associativity").read_text())
        line = int((base / "coherency_line_size").read_text())
        sets = size // (assoc * line)
        if sets > 0 and sets & (sets - 1) == 0 and size == sets * assoc * line:
            return size, assoc, line
    except (OSError, ValueError):
        pass
    return 1 << 20, 16, 64


def parse_dump(text, function=REQUEST_FUNCTION):
    """A callgrind dump -> ({event: total}, calls to functions whose name
    starts with `function`).  Handles compressed names ("fn=(7) name" once,
    then "fn=(7)") and uncompressed ones."""
    events = re.search(r"^events:\s*(.*)$", text, re.M)
    totals = re.search(r"^(?:summary|totals):\s*(.*)$", text, re.M)
    if not events or not totals:
        raise ValueError("not a callgrind dump: no events or summary line")
    names = events.group(1).split()
    values = [int(v) for v in totals.group(1).split()]
    if len(values) != len(names):
        raise ValueError("summary does not match the events line")
    wanted = set()   # compressed ids of matching functions
    calls = 0
    target = False   # the last cfn= line named a matching function
    for line in text.splitlines():
        m = re.match(r"^(c?fn)=(?:\((\d+)\))?\s*(.*)$", line)
        if m:
            kind, ident, name = m.groups()
            if name and name.startswith(function) and ident:
                wanted.add(ident)
            hit = (name.startswith(function)) if name else (ident in wanted)
            if kind == "cfn":
                target = hit
            continue
        if line.startswith("calls=") and target:
            calls += int(line[len("calls="):].split()[0])
            target = False
    return dict(zip(names, values)), calls


def per_request(totals, requests):
    """The table's figures from a dump's totals; None when nothing was counted."""
    if requests <= 0 or "Ir" not in totals:
        return None
    get = lambda k: totals.get(k, 0)  # noqa: E731
    return {"requests": requests,
            "instructions": get("Ir") / requests,
            "d1_misses": (get("D1mr") + get("D1mw")) / requests,
            "ll_misses": (get("DLmr") + get("DLmw")) / requests}


def table(results, names, ll):
    base = next((n for n in names if results[n].get("figures")), None)
    b = results[base]["figures"] if base else None
    lines = [f"per request; LL = {ll[0] // 1024} KiB, {ll[1]}-way (this machine's L2); "
             f"ratios against {base or 'nothing: no variant measured'}",
             "| variant | requests counted | instructions | D1 misses | LL misses | instructions ratio | LL ratio |",
             "|---|---:|---:|---:|---:|---:|---:|"]
    for n in names:
        f = results[n].get("figures")
        if f is None:
            lines.append(f"| {n} | failed: {results[n].get('failure', '?')} | | | | | |")
            continue
        lines.append(f"| {n} | {f['requests']} | {f['instructions']:.0f} | {f['d1_misses']:.1f} "
                     f"| {f['ll_misses']:.1f} | {f['instructions'] / b['instructions']:.2f} "
                     f"| {f['ll_misses'] / b['ll_misses']:.2f} |")
    return lines


def measure(name, env, argv, args, cpus, ll, out_dir):
    """One variant under callgrind; {"figures": ...} or {"failure": why}."""
    port = run.free_port()
    dump = out_dir / f"{name}.callgrind"
    for old in out_dir.glob(f"{name}.callgrind*"):
        old.unlink()
    vg = ["valgrind", "--tool=callgrind", "--cache-sim=yes", f"--LL={ll[0]},{ll[1]},{ll[2]}",
          f"--callgrind-out-file={dump}"]
    cmd = run.pinned(vg + argv + ["--host", "127.0.0.1", "--port", str(port)], cpus[0])
    with open(out_dir / f"{name}.server.log", "w") as slog:
        server = subprocess.Popen(cmd, env={**os.environ, **env}, stdout=slog, stderr=subprocess.STDOUT)
    try:
        if not run.wait_accepting(port, server, START_BOUND):
            return {"failure": f"not accepting within {START_BOUND} s (see {name}.server.log)"}
        load = run.pinned([str(args.build / "apps" / "dumb_load"), "--port", str(port),
                           "--connections", str(args.connections), "--closed-loop", "--cmd", "PING",
                           "--duration", f"{args.warmup + args.window + 2}s", "--timeout", "60s",
                           "--workers", "1", "--json"], cpus[1])
        with open(out_dir / f"{name}.load.json", "w") as lout, open(out_dir / f"{name}.load.log", "w") as lerr:
            loader = subprocess.Popen(load, stdout=lout, stderr=lerr)
        try:
            time.sleep(args.warmup)
            subprocess.run(["callgrind_control", "-z", str(server.pid)], capture_output=True, timeout=30, check=True)
            time.sleep(args.window)
            subprocess.run(["callgrind_control", "-d", str(server.pid)], capture_output=True, timeout=30, check=True)
        finally:
            try:
                loader.wait(timeout=args.warmup + args.window + 40)
            except subprocess.TimeoutExpired:
                loader.kill()
                loader.wait()
    except subprocess.SubprocessError as e:
        return {"failure": f"callgrind_control: {e}"}
    finally:
        run.stop_server(server)
    dumps = sorted(out_dir.glob(f"{name}.callgrind.*"), key=lambda p: p.stat().st_mtime)
    if not dumps:
        return {"failure": "no dump written"}
    totals, requests = parse_dump(dumps[0].read_text(errors="replace"))
    figures = per_request(totals, requests)
    if figures is None:
        return {"failure": f"no calls to {REQUEST_FUNCTION}..) in the window"}
    return {"figures": figures, "totals": totals}


def parse_args(argv):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("variants", nargs="+", metavar="NAME=COMMAND")
    p.add_argument("--connections", type=int, default=10000, help="PING connections (default 10000)")
    p.add_argument("--warmup", type=int, default=4, help="seconds of load before counting (default 4)")
    p.add_argument("--window", type=int, default=12, help="seconds counted (default 12)")
    p.add_argument("--build", type=Path, default=run.ROOT / "build" / "release",
                   help="build directory with apps/dumb_load (default build/release)")
    p.add_argument("--out", type=Path, default=run.ROOT / "build" / "bench-footprint",
                   help="dumps, logs and footprint.json go here (default build/bench-footprint)")
    p.add_argument("--json", action="store_true",
                   help="stdout is the whole record as one JSON object (the table goes to stderr)")
    args = p.parse_args(argv)
    if not 1 <= args.connections <= 100000:
        p.error("--connections: 1 to 100000")
    if not 1 <= args.warmup <= 120 or not 1 <= args.window <= 600:
        p.error("--warmup: 1 to 120 seconds; --window: 1 to 600 seconds")
    try:
        args.parsed = [ab.parse_variant(v) for v in args.variants]
    except ValueError as e:
        p.error(str(e))
    names = [n for n, _, _ in args.parsed]
    if len(set(names)) != len(names):
        p.error("variant names must differ")
    return args


def main(argv):
    args = parse_args(argv)
    for tool in ("valgrind", "callgrind_control"):
        if not shutil.which(tool):
            log(f"{tool} is missing: scripts/install-deps --bench installs valgrind")
            return 2
    if not (args.build / "apps" / "dumb_load").exists():
        log(f"{args.build / 'apps' / 'dumb_load'} is missing: build first (make build)")
        return 2
    soft, _ = run.raise_nofile()
    if args.connections + run.FD_SLACK > soft:
        log(f"{args.connections} connections need more descriptors than RLIMIT_NOFILE allows ({soft})")
        return 2
    cpus = run.cpu_split(os.sched_getaffinity(0))
    ll = l2_geometry()
    args.out.mkdir(parents=True, exist_ok=True)
    results = {}
    for i, (name, env, words) in enumerate(args.parsed):
        log(f"[{i + 1}/{len(args.parsed)}] {name}: {args.warmup} s warm-up, {args.window} s counted under callgrind")
        results[name] = measure(name, env, words, args, cpus, ll, args.out)
        f = results[name].get("figures")
        log(f"[{i + 1}/{len(args.parsed)}] {name}: " + (
            f"{f['instructions']:.0f} instructions, {f['ll_misses']:.1f} LL misses per request "
            f"({f['requests']} requests)" if f else f"FAILED: {results[name]['failure']}"))
    names = [n for n, _, _ in args.parsed]
    lines = [f"PING at {args.connections} connections, under callgrind"] + table(results, names, ll)
    record = {"command": shlex.join([sys.argv[0]] + argv), "connections": args.connections,
              "warmup_s": args.warmup, "window_s": args.window,
              "ll": {"size": ll[0], "assoc": ll[1], "line": ll[2]},
              "variants": {n: {"env": e, "argv": w} for n, e, w in args.parsed}, "results": results}
    (args.out / "footprint.json").write_text(json.dumps(record, indent=1))
    print("\n".join(lines), file=sys.stderr if args.json else sys.stdout)
    if args.json:
        print(json.dumps(record))
    return 0 if all("figures" in r for r in results.values()) else 1


if __name__ == "__main__":
    try:
        sys.exit(main(sys.argv[1:]))
    except KeyboardInterrupt:
        log("interrupted")
        sys.exit(130)
