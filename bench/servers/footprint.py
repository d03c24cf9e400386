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
PING, not under valgrind) on the rest.  The counters are dumped
(callgrind_control -d) after --warmup seconds with the load running, and
again --window seconds later; the second dump holds the window alone.
dumb_load is then stopped; a run fails if it saw any error, timeout or
connect failure, or had not every connection up before the window.  Per
request, from the window's dump:

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
error or a missing tool.  Bounded: each variant takes warmup + window and
at most about two minutes more (start-up, the two dumps, stopping
dumb_load and the server, each with its own bound); only 127.0.0.1 is
used.
"""

import argparse
import json
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import ab
import run
from report import log

START_BOUND = 30        # s for the server to accept under valgrind
CONTROL_BOUND = 30      # s for one callgrind_control request
LOAD_STOP_BOUND = 30    # s for dumb_load to stop after SIGINT
REQUEST_FUNCTION = "dumb::parse("


def l2_geometry(cache_dir=Path("/sys/devices/system/cpu/cpu0/cache")):
    """(size, associativity, line) of CPU 0's level-2 data or unified cache
    from sysfs, or 1 MiB, 16, 64 when there is none or it is not a geometry
    callgrind accepts (sets a power of two)."""
    try:
        for index in sorted(cache_dir.glob("index*")):
            if (index / "level").read_text().strip() != "2" or \
                    (index / "type").read_text().strip() not in ("Data", "Unified"):
                continue
            size_text = (index / "size").read_text().strip()
            size = int(size_text[:-1]) * 1024 if size_text.endswith("K") else int(size_text)
            assoc = int((index / "ways_of_associativity").read_text())
            line = int((index / "coherency_line_size").read_text())
            sets = size // (assoc * line) if assoc > 0 and line > 0 else 0
            if sets > 0 and sets & (sets - 1) == 0 and size == sets * assoc * line:
                return size, assoc, line
            break
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


def ratio(a, b):
    return f"{a / b:.2f}" if b else "-"


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
                     f"| {f['ll_misses']:.1f} | {ratio(f['instructions'], b['instructions'])} "
                     f"| {ratio(f['ll_misses'], b['ll_misses'])} |")
    return lines


def window_dump(dump):
    """The window's dump of a run that wrote `dump` (its --callgrind-out-file):
    callgrind names the dumps callgrind_control asks for dump.1, dump.2, ...,
    each with the costs since the one before, and writes plain `dump` at
    exit. The run dumps twice (end of warm-up, end of the window), so the
    window is dump.2, and only if dump.1 exists too: callgrind_control exits
    0 even when nothing was dumped, so the files are the only proof."""
    first, second = Path(f"{dump}.1"), Path(f"{dump}.2")
    if not first.exists():
        return None, "no dump at the end of the warm-up"
    if not second.exists():
        return None, "no dump at the end of the window"
    return second, None


def check_load(summary, warmup):
    """Why dumb_load's JSON summary makes the window worthless, or None."""
    if summary is None:
        return "dumb_load printed no summary"
    bad = sum(summary.get(k) or 0 for k in ("errors", "timeouts", "connect_failures"))
    if bad:
        return f"dumb_load saw {bad} errors, timeouts or connect failures"
    up = summary.get("all_up_s")
    if up is None or up >= warmup:
        return f"not every connection was up before the window (all up at {up} s, warm-up {warmup} s)"
    return None


def control(pid, what):
    # Raises SubprocessError on a hang; its exit status says nothing (see window_dump).
    subprocess.run(["callgrind_control", what, str(pid)], capture_output=True, timeout=CONTROL_BOUND)


def measure(name, env, argv, args, cpus, ll, out_dir):
    """One variant under callgrind; {"figures": ...} or {"failure": why}."""
    port = run.free_port()
    dump = out_dir / f"{name}.callgrind"
    for old in out_dir.glob(f"{name}.callgrind*"):
        old.unlink()
    vg = ["valgrind", "--tool=callgrind", "--cache-sim=yes", f"--LL={ll[0]},{ll[1]},{ll[2]}",
          f"--callgrind-out-file={dump}"]
    cmd = run.pinned(vg + argv + ["--host", "127.0.0.1", "--port", str(port)], cpus[0])
    load_json = out_dir / f"{name}.load.json"
    with open(out_dir / f"{name}.server.log", "w") as slog:
        server = subprocess.Popen(cmd, env={**os.environ, **env}, stdout=slog, stderr=subprocess.STDOUT)
    try:
        if not run.wait_accepting(port, server, START_BOUND):
            return {"failure": f"not accepting within {START_BOUND} s (see {name}.server.log)"}
        # Longer than needed: the load is stopped (SIGINT) once the window is dumped.
        load = run.pinned([str(args.build / "apps" / "dumb_load"), "--port", str(port),
                           "--connections", str(args.connections), "--closed-loop", "--cmd", "PING",
                           "--duration", f"{args.warmup + args.window + 3 * CONTROL_BOUND}s",
                           "--timeout", "60s", "--workers", "1", "--json"], cpus[1])
        with open(load_json, "w") as lout, open(out_dir / f"{name}.load.log", "w") as lerr:
            loader = subprocess.Popen(load, stdout=lout, stderr=lerr)
        try:
            time.sleep(args.warmup)
            control(server.pid, "-d")  # dump.1: start-up and warm-up
            time.sleep(args.window)
            control(server.pid, "-d")  # dump.2: the window
            loader.send_signal(signal.SIGINT)
            loader.wait(timeout=LOAD_STOP_BOUND)
        finally:
            if loader.poll() is None:
                loader.kill()
                loader.wait()
    except subprocess.SubprocessError as e:
        return {"failure": f"callgrind_control or dumb_load hung: {e}"}
    finally:
        run.stop_server(server)
    if loader.returncode != 0:
        return {"failure": f"dumb_load exited {loader.returncode} (see {name}.load.log)"}
    try:
        summary = json.loads(load_json.read_text())
    except (OSError, ValueError):
        summary = None
    why = check_load(summary, args.warmup)
    if why:
        return {"failure": why}
    path, why = window_dump(dump)
    if why:
        return {"failure": why}
    try:
        totals, requests = parse_dump(path.read_text(errors="replace"))
    except ValueError as e:
        return {"failure": f"{path.name}: {e}"}
    figures = per_request(totals, requests)
    if figures is None:
        return {"failure": f"no calls to {REQUEST_FUNCTION}..) in the window"}
    return {"figures": figures, "totals": totals}


def parse_args(argv):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ab.add_variant_args(p, "bench-footprint", "dumps, logs and footprint.json")
    p.add_argument("--warmup", type=int, default=4, help="seconds of load before counting (default 4)")
    p.add_argument("--window", type=int, default=12, help="seconds counted (default 12)")
    args = p.parse_args(argv)
    if not 1 <= args.warmup <= 120 or not 1 <= args.window <= 600:
        p.error("--warmup: 1 to 120 seconds; --window: 1 to 600 seconds")
    ab.check_variant_args(p, args)
    return args


def main(argv):
    args = parse_args(argv)
    for tool in ("valgrind", "callgrind_control"):
        if not shutil.which(tool):
            log(f"{tool} is missing: scripts/install-deps --bench installs valgrind")
            return 2
    cpus = ab.preflight(args)
    if cpus is None:
        return 2
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
    record = {"command": shlex.join([sys.argv[0]] + argv), "connections": args.connections,
              "warmup_s": args.warmup, "window_s": args.window,
              "ll": {"size": ll[0], "assoc": ll[1], "line": ll[2]},
              "variants": {n: {"env": e, "argv": w} for n, e, w in args.parsed}, "results": results}
    (args.out / "footprint.json").write_text(json.dumps(record, indent=1))
    lines = [f"PING at {args.connections} connections, under callgrind"] + table(results, names, ll)
    print("\n".join(lines), file=sys.stderr if args.json else sys.stdout)
    if args.json:
        print(json.dumps(record))
    return 0 if all("figures" in r for r in results.values()) else 1


if __name__ == "__main__":
    run.cli(main)
