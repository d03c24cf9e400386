#!/usr/bin/env python3
"""Interleaved A/B of DUMB servers (or any server taking --host/--port) at
one closed-loop PING step: server CPU time per request, and its split, as
ratios within one run.

    python3 bench/servers/ab.py [--rounds 4] [--connections 10000] [--duration 14]
                                [--build build/release] [--out DIR] [--json]
                                NAME=COMMAND [NAME=COMMAND ...]

Each COMMAND is a server command line (split as a shell would; leading
VAR=value words set its environment) to which "--host 127.0.0.1 --port P"
is appended.  Examples:

    python3 bench/servers/ab.py \\
        "fiber=build/release/apps/dumb_fiber" \\
        "floor=build/release/bench/servers/ping_floor" \\
        "go=build/release/bench/go-dumb"          # built by run.py

    python3 bench/servers/ab.py "old=/tmp/dumb_fiber.old" "new=build/release/apps/dumb_fiber"

Why: this machine's noise moves one server's CPU per request by 10-20 %
between runs minutes apart, more than most changes worth trying.  Running
the variants in rounds, in ABBA order (round 1 A B C, round 2 C B A, ...),
and comparing medians cancels the slow drift; the spread between rounds is
printed, and is the noise to read the ratios against.

Each run is run.py's: the server pinned to the first half of this
process's CPUs, dumb_load (--closed-loop --cmd PING) to the rest, and the
measured window from the first progress line with every connection up to
the end of --duration; CPU time from /proc, summed over the server's
process tree.  Every run is bounded (run.py's timeouts); only 127.0.0.1 is
used.  Progress goes to stderr; per-run results, and with --json the whole
record, to stdout and to --out.
"""

import argparse
import json
import os
import shlex
import statistics
import subprocess
import sys
import time
from pathlib import Path

import run
from report import fmt, log

FIELDS = ("cpu_us_per_request", "cpu_user_us_per_request", "cpu_sys_us_per_request",
          "server_cpus_softirq_us_per_request", "window_throughput")


def parse_variant(text):
    """NAME=COMMAND -> (name, env, argv); ValueError with the reason."""
    name, sep, command = text.partition("=")
    if not sep or not name or not command.strip():
        raise ValueError(f"'{text}': want NAME=COMMAND")
    if not name.replace("_", "").replace("-", "").isalnum():
        raise ValueError(f"'{name}': a variant's name is letters, digits, '-' and '_'")
    words = shlex.split(command)
    env = {}
    while words and "=" in words[0] and not words[0].startswith(("/", ".")):
        key, _, value = words.pop(0).partition("=")
        env[key] = value
    if not words:
        raise ValueError(f"'{text}': no command after the environment")
    return name, env, words


def round_order(names, r):
    """ABBA: even rounds in the given order, odd rounds reversed."""
    return list(names) if r % 2 == 0 else list(reversed(names))


def summarize(runs):
    """Per field, the median over runs that measured it, and (min, max)."""
    out = {}
    for field in FIELDS:
        vals = [x[field] for x in runs if x.get(field) is not None]
        if vals:
            out[field] = {"median": statistics.median(vals), "min": min(vals), "max": max(vals)}
    return out


def one_run(name, env, argv, args, cpus, logs):
    server_cpus, load_cpus = cpus
    port = run.free_port()
    cmd = run.pinned(argv + ["--host", "127.0.0.1", "--port", str(port)], server_cpus)
    with open(logs / f"{name}.{port}.server.log", "w") as srv_log:
        proc = subprocess.Popen(cmd, stdout=srv_log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                env=dict(os.environ, **env), start_new_session=True)
        try:
            if not run.wait_accepting(port, proc, run.START_TIMEOUT):
                return {"failed": True, "failure": "server did not start"}
            load_cmd = run.pinned([str(args.build / "apps" / "dumb_load"), "--host", "127.0.0.1",
                                   "--port", str(port), "--connections", str(args.connections),
                                   "--duration", f"{args.duration}s", "--progress", "--json",
                                   "--closed-loop", "--cmd", "PING"], load_cpus)
            res = run.measure(proc, load_cmd, args.duration, args.connections, logs / f"{name}.{port}.load",
                              server_cpus)
            if proc.poll() is not None:
                res.update(failed=True, failure=f"server died (status {proc.returncode})")
        finally:
            run.stop_server(proc)
    bad = (res.get("errors") or 0) + (res.get("timeouts") or 0)
    if res.get("cpu_us_per_request") is None:
        res.update(failed=True, failure=res.get("window_missing") or res.get("failure") or "no window")
    elif bad:
        res.update(failed=True, failure=f"{bad} errors and timeouts")
    res.setdefault("failed", False)
    res.pop("load_json", None)
    return res


def parse_args(argv):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("variants", nargs="+", metavar="NAME=COMMAND")
    p.add_argument("--rounds", type=int, default=4, help="rounds, every variant once each (default 4)")
    p.add_argument("--connections", type=int, default=10000, help="PING connections (default 10000)")
    p.add_argument("--duration", type=int, default=14, help="dumb_load --duration, seconds (default 14)")
    p.add_argument("--build", type=Path, default=run.ROOT / "build" / "release",
                   help="build directory with apps/dumb_load (default build/release)")
    p.add_argument("--out", type=Path, default=run.ROOT / "build" / "bench-ab",
                   help="logs and ab.json go here (default build/bench-ab)")
    p.add_argument("--json", action="store_true", help="print the whole record as JSON on stdout at the end")
    args = p.parse_args(argv)
    if not 1 <= args.rounds <= 50:
        p.error("--rounds: 1 to 50")
    if not 1 <= args.connections <= 100000:
        p.error("--connections: 1 to 100000")
    if not 3 <= args.duration <= 600:
        p.error("--duration: 3 to 600 seconds")
    try:
        args.parsed = [parse_variant(v) for v in args.variants]
    except ValueError as e:
        p.error(str(e))
    names = [n for n, _, _ in args.parsed]
    if len(set(names)) != len(names):
        p.error("variant names must differ")
    return args


def main(argv):
    args = parse_args(argv)
    load = args.build / "apps" / "dumb_load"
    if not load.exists():
        log(f"{load} is missing: build first (make build)")
        return 2
    soft, hard = run.raise_nofile()
    if args.connections + run.FD_SLACK > soft:
        log(f"{args.connections} connections need more descriptors than RLIMIT_NOFILE allows ({soft})")
        return 2
    cpus = run.cpu_split(os.sched_getaffinity(0))
    logs = args.out / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    variants = {n: (env, words) for n, env, words in args.parsed}
    runs = {n: [] for n in variants}
    total, done, t0 = args.rounds * len(variants), 0, time.monotonic()
    for r in range(args.rounds):
        for name in round_order(variants, r):
            env, words = variants[name]
            res = one_run(name, env, words, args, cpus, logs)
            res["round"] = r + 1
            runs[name].append(res)
            done += 1
            eta = (time.monotonic() - t0) / done * (total - done)
            if res["failed"]:
                log(f"[{done}/{total}] round {r + 1} {name}: FAILED: {res['failure']} (~{eta:.0f} s left)")
            else:
                log(f"[{done}/{total}] round {r + 1} {name}: {res['cpu_us_per_request']:.2f} µs/request "
                    f"(user {fmt(res['cpu_user_us_per_request'], 2)}, system {fmt(res['cpu_sys_us_per_request'], 2)}), "
                    f"{res['window_throughput']:.0f} requests/s (~{eta:.0f} s left)")
    first = next(iter(variants))
    summary = {n: summarize([x for x in runs[n] if not x["failed"]]) for n in variants}
    base = summary[first].get("cpu_us_per_request", {}).get("median")
    print(f"PING at {args.connections} connections, {args.rounds} rounds (ABBA), medians; "
          f"ratios against {first}")
    print("| variant | CPU µs/request (min-max) | user | system | softirq on its CPU | requests/s | CPU ratio |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for n in variants:
        s = summary[n]
        c = s.get("cpu_us_per_request")
        if c is None:
            print(f"| {n} | no successful run | | | | | |")
            continue
        med = lambda f: s[f]["median"] if f in s else None  # noqa: E731
        ratio = f"{c['median'] / base:.3f}" if base else "-"
        print(f"| {n} | {c['median']:.2f} ({c['min']:.2f}-{c['max']:.2f}) | {fmt(med('cpu_user_us_per_request'), 2)} "
              f"| {fmt(med('cpu_sys_us_per_request'), 2)} | {fmt(med('server_cpus_softirq_us_per_request'), 2)} "
              f"| {fmt(med('window_throughput'), 0)} | {ratio} |")
    failed = sum(x["failed"] for v in runs.values() for x in v)
    if failed:
        print(f"\n{failed} of {total} runs failed: see {args.out / 'ab.json'}")
    record = {"command": " ".join([sys.argv[0]] + argv), "connections": args.connections,
              "rounds": args.rounds, "duration_s": args.duration,
              "pinning": {"server": cpus[0], "load": cpus[1]},
              "variants": {n: {"env": e, "argv": w} for n, (e, w) in variants.items()},
              "summary": summary, "runs": runs}
    (args.out / "ab.json").write_text(json.dumps(record, indent=1))
    if args.json:
        print(json.dumps(record))
    return 1 if failed == total else 0


if __name__ == "__main__":
    try:
        sys.exit(main(sys.argv[1:]))
    except KeyboardInterrupt:
        log("interrupted")
        sys.exit(130)
