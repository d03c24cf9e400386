#!/usr/bin/env python3
"""System calls per fiber in the fan-out benchmarks, gort beside Go, counted
with `strace -c -f` in runs of their own (tracing slows every call, so these
runs are never the ones timed).

    python3 bench/fanout_syscalls.py --build build/release [--sizes 100k] [--workers 1,2]

For each workload (fanout_exit, fanout_park, fanout_sleep), size and worker
count it runs the one gort benchmark (<build>/bench/gort_bench_runtime) and
the same Go benchmark (<build>/bench/go_peer, built by bench/run_micro.py or
here) under strace, and prints the calls of the whole process (start-up
included) divided by the fibers it spawned (rounds x N, as bench_fanout.cpp
and the Go peer count them), with the three most frequent calls.
"""
import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import run_micro  # noqa: E402  (the Go peer's build rule and environment)

KINDS = ["exit", "park", "sleep"]
SIZES = {"1k": 1000, "10k": 10000, "100k": 100000, "1M": 1000000}


def rounds(kind, n):
    """Fan-outs per benchmark run: iterations_for() in bench_fanout.cpp."""
    k = max(1, 200000 // n)
    return min(k, 50) if kind == "sleep" else k


def strace_counts(cmd):
    """Runs cmd under strace -c -f; returns {syscall: calls}."""
    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "strace.txt")
        subprocess.run(["strace", "-c", "-f", "-o", out] + cmd, stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL, check=True)
        counts = {}
        for line in Path(out).read_text().splitlines():
            f = line.split()
            if len(f) >= 5 and re.match(r"^[\d.]+$", f[0]) and f[-1] != "total":
                counts[f[-1]] = int(f[3])
        return counts


def summary(counts, fibers):
    total = sum(counts.values())
    top = sorted(counts.items(), key=lambda kv: -kv[1])[:3]
    return total / fibers, ", ".join(f"{name} {calls / fibers:.3g}" for name, calls in top)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--build", required=True, type=Path)
    p.add_argument("--sizes", default="100k", help="comma list of 1k, 10k, 100k, 1M (default 100k)")
    p.add_argument("--workers", default="1,2")
    p.add_argument("--kinds", default=",".join(KINDS))
    p.add_argument("--no-go", action="store_true")
    a = p.parse_args(argv)
    if shutil.which("strace") is None:
        sys.exit("fanout_syscalls: strace not found (scripts/install-deps --bench installs it)")
    build = a.build.resolve()
    gort_bin = build / "bench" / "gort_bench_runtime"
    if not os.access(gort_bin, os.X_OK):
        sys.exit(f"fanout_syscalls: {gort_bin} not found (make build)")
    go_bin = None
    if not a.no_go and shutil.which("go"):
        go_bin = run_micro.build_go_peer(shutil.which("go"), build)

    print("system calls per fiber, whole process under strace -c -f (start-up included)")
    print(f"{'benchmark':<20} {'workers':>7} {'gort':>9}  {'gort top calls per fiber':<44} {'Go':>9}  Go top calls per fiber")
    for kind in a.kinds.split(","):
        for size in a.sizes.split(","):
            n = SIZES[size]
            fibers = rounds(kind, n) * n
            name = f"fanout_{kind}_{size}"
            for w in a.workers.split(","):
                g = strace_counts([str(gort_bin), f"--benchmark_filter=^{name}/workers:{w}/"])
                g_per, g_top = summary(g, fibers)
                line = f"{name:<20} {w:>7} {g_per:>9.4f}  {g_top:<44}"
                if go_bin:
                    o = strace_counts([str(go_bin), "-procs", w, "-reps", "1", "-only", f"^{name}$"])
                    o_per, o_top = summary(o, fibers)
                    line += f" {o_per:>9.4f}  {o_top}"
                print(line, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
