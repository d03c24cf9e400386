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

Each run is run.py's: it waits (up to a minute, within a budget of ten
for the whole comparison) until the rest of the machine is quiet, pins
the server to the first half of this process's CPUs and dumb_load
(--closed-loop --cmd PING) to the rest, and measures from the first
progress line with every connection up to the end of --duration: CPU
time from /proc, summed over the server's process tree.  The table says
how busy dumb_load's core was (at 90 % or more a run is
load-generator-bound: the server had room to spare, and its CPU per
request is taken at a lighter load than the others') and how much CPU
other processes used meanwhile.  Every run is bounded (run.py's
timeouts); only 127.0.0.1 is used.

Output: progress, one line per run, on stderr; the table on stdout (on
stderr with --json, when stdout is the whole record as one JSON object);
ab.json, and each round's logs in round-N/logs, in --out.  Exit status: 0 when every variant
had at least one successful run, 1 otherwise, 2 on a usage error.
"""

import argparse
import json
import os
import shlex
import statistics
import sys
import time
from pathlib import Path

import run
from report import fmt, log

FIELDS = ("cpu_us_per_request", "cpu_user_us_per_request", "cpu_sys_us_per_request",
          "server_cpus_softirq_us_per_request", "window_throughput", "server_cpu_util", "load_cpu_util",
          "other_cpu_util")


def parse_variant(text):
    """NAME=COMMAND -> (name, env, argv); ValueError with the reason."""
    name, sep, command = text.partition("=")
    if not sep or not name or not command.strip():
        raise ValueError(f"'{text}': want NAME=COMMAND")
    if not name.replace("_", "").replace("-", "").isalnum():
        raise ValueError(f"'{name}': a variant's name is letters, digits, '-' and '_'")
    try:
        words = shlex.split(command)
    except ValueError as e:
        raise ValueError(f"'{text}': {e}") from None
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
    """Per field, the median over runs that measured it, and (min, max);
    with the count of runs, and of load-generator-bound ones."""
    out = {"runs": len(runs), "load_generator_bound_runs": sum(bool(x.get("load_generator_bound")) for x in runs)}
    for field in FIELDS:
        vals = [x[field] for x in runs if x.get(field) is not None]
        if vals:
            out[field] = {"median": statistics.median(vals), "min": min(vals), "max": max(vals)}
    return out


def table(summary, names, rounds):
    """The markdown table (a list of lines): ratios against the first
    variant with a measured CPU per request, named in the heading."""
    base_name = next((n for n in names if "cpu_us_per_request" in summary[n]), None)
    base = summary[base_name]["cpu_us_per_request"]["median"] if base_name else None
    med = lambda s, f, nd: fmt(s[f]["median"], nd) if f in s else "-"  # noqa: E731
    pct = lambda s, f: f"{100 * s[f]['median']:.0f} %" if f in s else "-"  # noqa: E731
    lines = [f"medians over {rounds} rounds (ABBA); CPU ratio against {base_name or 'nothing: no variant measured'}",
             "| variant | CPU µs/request (min-max) | user | system | softirq on its CPU | requests/s "
             "| server's CPU | dumb_load's CPU | others' CPU | runs (load-generator-bound) | CPU ratio |",
             "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for n in names:
        s = summary[n]
        c = s.get("cpu_us_per_request")
        if c is None:
            lines.append(f"| {n} | no successful run | | | | | | | | 0 of {rounds} | |")
            continue
        lines.append(f"| {n} | {c['median']:.2f} ({c['min']:.2f}-{c['max']:.2f}) "
                     f"| {med(s, 'cpu_user_us_per_request', 2)} | {med(s, 'cpu_sys_us_per_request', 2)} "
                     f"| {med(s, 'server_cpus_softirq_us_per_request', 2)} | {med(s, 'window_throughput', 0)} "
                     f"| {pct(s, 'server_cpu_util')} | {pct(s, 'load_cpu_util')} | {pct(s, 'other_cpu_util')} "
                     f"| {s['runs']} of {rounds} ({s['load_generator_bound_runs']}) | {c['median'] / base:.3f} |")
    return lines


def exit_status(summary):
    """0 when every variant has a measured run, else 1."""
    return 0 if all("cpu_us_per_request" in s for s in summary.values()) else 1


def one_run(name, env, argv, args, cpus, out_dir):
    """run.py's run_one at this PING step (the variant's environment set
    through env(1)); on top of run.py's verdict, any error or timeout, or
    no measured window, fails the run: a ratio wants every run clean."""
    cmd = (["env"] + [f"{k}={v}" for k, v in env.items()] if env else []) + argv
    res = run.run_one(name, cmd, "ping", args.connections, args, cpus, out_dir)
    bad = (res.get("errors") or 0) + (res.get("timeouts") or 0)
    if not res["failed"] and res.get("cpu_us_per_request") is None:
        res.update(failed=True, failure=res.get("window_missing") or "no window")
    elif not res["failed"] and bad:
        res.update(failed=True, failure=f"{bad} errors and timeouts")
    res.pop("load_json", None)  # dumb_load's whole summary stays in the round's logs
    return res


def add_variant_args(p, out_default, out_help):
    """The arguments ab.py and footprint.py share: the variants, --connections,
    --build, --out and --json."""
    p.add_argument("variants", nargs="+", metavar="NAME=COMMAND")
    p.add_argument("--connections", type=int, default=10000, help="PING connections (default 10000)")
    p.add_argument("--build", type=Path, default=run.ROOT / "build" / "release",
                   help="build directory with apps/dumb_load (default build/release)")
    p.add_argument("--out", type=Path, default=run.ROOT / "build" / out_default,
                   help=f"{out_help} go here (default build/{out_default})")
    p.add_argument("--json", action="store_true",
                   help="stdout is the whole record as one JSON object (the table goes to stderr)")


def check_variant_args(p, args):
    """add_variant_args' checks, after p.parse_args: sets args.parsed, a
    (name, env, argv) per variant, or exits through p.error."""
    if not 1 <= args.connections <= 100000:
        p.error("--connections: 1 to 100000")
    try:
        args.parsed = [parse_variant(v) for v in args.variants]
    except ValueError as e:
        p.error(str(e))
    names = [n for n, _, _ in args.parsed]
    if len(set(names)) != len(names):
        p.error("variant names must differ")


def preflight(args):
    """dumb_load built and descriptors enough for args.connections: the
    (server CPUs, load CPUs) split, or None after saying why."""
    load = args.build / "apps" / "dumb_load"
    if not load.exists():
        log(f"{load} is missing: build first (make build)")
        return None
    soft, _ = run.raise_nofile()
    if args.connections + run.FD_SLACK > soft:
        log(f"{args.connections} connections need more descriptors than RLIMIT_NOFILE allows ({soft})")
        return None
    return run.cpu_split(os.sched_getaffinity(0))


def parse_args(argv):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_variant_args(p, "bench-ab", "logs and ab.json")
    p.add_argument("--rounds", type=int, default=4, help="rounds, every variant once each; even (default 4)")
    p.add_argument("--duration", type=int, default=14, help="dumb_load --duration, seconds (default 14)")
    args = p.parse_args(argv)
    if not 2 <= args.rounds <= 50 or args.rounds % 2:
        p.error("--rounds: an even number from 2 to 50 (ABBA: each variant as often early as late)")
    if not 3 <= args.duration <= 600:
        p.error("--duration: 3 to 600 seconds")
    check_variant_args(p, args)
    return args


def main(argv):
    args = parse_args(argv)
    cpus = preflight(args)
    if cpus is None:
        return 2
    variants = {n: (env, words) for n, env, words in args.parsed}
    runs = {n: [] for n in variants}
    total, done, t0 = args.rounds * len(variants), 0, time.monotonic()
    quiet_budget = run.NOISE_BUDGET  # seconds of waiting for a quiet machine, over all runs
    for r in range(args.rounds):
        for name in round_order(variants, r):
            env, words = variants[name]
            if quiet_budget > 0:
                t = time.monotonic()
                if run.wait_for_quiet(min(run.QUIET_WAIT, quiet_budget)) is None:
                    log(f"the machine stayed busy; running {name} anyway")
                quiet_budget -= time.monotonic() - t
            round_dir = args.out / f"round-{r + 1}"  # run_one writes round_dir/logs/<name>.ping.<conns>.*
            (round_dir / "logs").mkdir(parents=True, exist_ok=True)
            res = one_run(name, env, words, args, cpus, round_dir)
            res["round"] = r + 1
            runs[name].append(res)
            done += 1
            eta = (time.monotonic() - t0) / done * (total - done)
            if res["failed"]:
                log(f"[{done}/{total}] round {r + 1} {name}: FAILED: {res['failure']} (~{eta:.0f} s left)")
            else:
                lg = ", load-generator-bound" if res.get("load_generator_bound") else ""
                log(f"[{done}/{total}] round {r + 1} {name}: {res['cpu_us_per_request']:.2f} µs/request "
                    f"(user {fmt(res['cpu_user_us_per_request'], 2)}, system {fmt(res['cpu_sys_us_per_request'], 2)}), "
                    f"{res['window_throughput']:.0f} requests/s, others' CPU "
                    f"{100 * (res.get('other_cpu_util') or 0):.0f} %{lg} (~{eta:.0f} s left)")
    names = list(variants)
    summary = {n: summarize([x for x in runs[n] if not x["failed"]]) for n in names}
    lines = [f"PING at {args.connections} connections, {args.rounds} rounds"] + table(summary, names, args.rounds)
    failed = sum(x["failed"] for v in runs.values() for x in v)
    if failed:
        lines.append(f"\n{failed} of {total} runs failed: see {args.out / 'ab.json'}")
    record = {"command": shlex.join([sys.argv[0]] + argv), "connections": args.connections,
              "rounds": args.rounds, "duration_s": args.duration,
              "pinning": {"server": cpus[0], "load": cpus[1]},
              "variants": {n: {"env": e, "argv": w} for n, (e, w) in variants.items()},
              "summary": summary, "runs": runs}
    (args.out / "ab.json").write_text(json.dumps(record, indent=1))
    print("\n".join(lines), file=sys.stderr if args.json else sys.stdout)
    if args.json:
        print(json.dumps(record))
    return exit_status(summary)


if __name__ == "__main__":
    run.cli(main)
