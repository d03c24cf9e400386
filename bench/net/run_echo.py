#!/usr/bin/env python3
"""Loopback echo benchmark: the gort echo server against the Go one.

Builds what it needs (a Release CMake build of gort_echo_server and
gort_echo_load, and bench/peers/go-echo with the local Go toolchain, no
network), then for each server and each mode starts the server pinned to
CPU 0 and the load client pinned to CPU 1 (taskset), and measures:

  requests/s                 as counted by the client
  server CPU s               utime + stime of the server process, from
                             /proc/<pid>/stat, over the measured interval
  requests/s per server core requests / server CPU seconds

Modes (512-byte messages unless --size):
  pingpong-1      one connection, one message in flight
  pingpong-1000   1000 connections, one message in flight on each
  stream-1        one connection, the client writes back to back while
                  another fiber reads the echo

Stdlib only. --quick runs short intervals for a smoke test.
"""
import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
MODES = [("pingpong-1", "pingpong", 1), ("pingpong-1000", "pingpong", 1000), ("stream-1", "stream", 1)]
CLK_TCK = os.sysconf("SC_CLK_TCK")


def sh(cmd, **kw):
    print("+ " + " ".join(cmd), file=sys.stderr)
    subprocess.run(cmd, check=True, **kw)


def build(build_dir):
    # A build folder of its own is configured for just this; an existing one
    # (build/release) keeps its options: only the targets are built there.
    if not os.path.exists(os.path.join(build_dir, "CMakeCache.txt")):
        gen = ["-G", "Ninja"] if shutil.which("ninja") else []
        sh(["cmake", "-S", ROOT, "-B", build_dir, *gen, "-DCMAKE_BUILD_TYPE=Release",
            "-DGORT_BUILD_TESTS=OFF", "-DGORT_BUILD_APPS=OFF", "-DGORT_BUILD_BENCH=ON"], stdout=subprocess.DEVNULL)
    sh(["cmake", "--build", build_dir, "--target", "gort_echo_server", "gort_echo_load"], stdout=subprocess.DEVNULL)
    go_out = os.path.join(build_dir, "go-echo")
    env = dict(os.environ, GOFLAGS="-mod=mod", GOPROXY="off", GOCACHE=os.path.join(build_dir, "gocache"))
    sh(["go", "build", "-o", go_out, "."], cwd=os.path.join(ROOT, "bench", "peers", "go-echo"), env=env)
    return {
        "gort": [os.path.join(build_dir, "bench", "net", "gort_echo_server")],
        "go": [go_out, "-addr"],
    }, os.path.join(build_dir, "bench", "net", "gort_echo_load")


def cpu_seconds(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK  # utime, stime (fields 14, 15)


def start_server(cmd):
    p = subprocess.Popen(["taskset", "-c", "0", *cmd, "127.0.0.1:0"], stdout=subprocess.PIPE, text=True)
    line = p.stdout.readline()
    m = re.search(r"listening on (\S+)", line)
    if not m:
        p.kill()
        raise RuntimeError(f"server {cmd[0]} did not start: {line!r}")
    return p, m.group(1)


def measure(server_cmd, load, mode, conns, size, seconds):
    p, address = start_server(server_cmd)
    try:
        # The client opens and warms up its connections first; sample the
        # server's CPU time once they are all established (the client says
        # nothing before the run, so sample just before and after it).
        c0 = cpu_seconds(p.pid)
        t0 = time.monotonic()
        out = subprocess.run(["taskset", "-c", "1", load, address, mode, str(conns), str(size), str(seconds)],
                             check=True, capture_output=True, text=True).stdout
        c1 = cpu_seconds(p.pid)
        wall = time.monotonic() - t0
        r = json.loads(out.strip().splitlines()[-1])
        return {"rps": r["requests"] / r["seconds"], "cpu": c1 - c0, "wall": wall,
                "per_core": r["requests"] / max(c1 - c0, 1e-9)}
    finally:
        p.kill()
        p.wait()


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--build", default=os.path.join(ROOT, "build", "net-bench"), help="build directory")
    ap.add_argument("--seconds", type=float, default=5.0, help="measured interval per run")
    ap.add_argument("--size", type=int, default=512, help="message size in bytes")
    ap.add_argument("--reps", type=int, default=3, help="runs per cell; the median is reported")
    ap.add_argument("--quick", action="store_true", help="1 s, one run per cell")
    ap.add_argument("--no-build", action="store_true", help="use binaries already built")
    args = ap.parse_args()
    if args.quick:
        args.seconds, args.reps = 1.0, 1
    # Absolute: the Go build runs in the peer's folder, and GOCACHE must be absolute.
    args.build = os.path.abspath(args.build)
    if os.cpu_count() < 2:
        print("warning: fewer than 2 CPUs; server and client cannot be pinned apart", file=sys.stderr)
    servers, load = build(args.build) if not args.no_build else (
        {"gort": [os.path.join(args.build, "bench", "net", "gort_echo_server")],
         "go": [os.path.join(args.build, "go-echo"), "-addr"]},
        os.path.join(args.build, "bench", "net", "gort_echo_load"))

    results = {}
    for name, mode, conns in MODES:
        for server in ("gort", "go"):
            runs = [measure(servers[server], load, mode, conns, args.size, args.seconds) for _ in range(args.reps)]
            runs.sort(key=lambda r: r["per_core"])
            results[(name, server)] = runs[len(runs) // 2]
            r = results[(name, server)]
            print(f"  {name:14} {server:5} {r['rps']:12.0f} req/s  {r['per_core']:12.0f} req/s per server core",
                  file=sys.stderr)

    print(f"\nloopback echo, {args.size}-byte messages, server on CPU 0, client (gort_echo_load) on CPU 1, "
          f"{args.seconds:g} s x {args.reps} (median)\n")
    hdr = f"| {'mode':14} | {'gort req/s':>11} | {'go req/s':>11} | {'gort req/s/core':>15} | {'go req/s/core':>13} | {'gort/go (per core)':>18} |"
    print(hdr)
    print("|" + "|".join("-" * (len(c)) for c in hdr.split("|")[1:-1]) + "|")
    for name, _, _ in MODES:
        g, o = results[(name, "gort")], results[(name, "go")]
        print(f"| {name:14} | {g['rps']:11.0f} | {o['rps']:11.0f} | {g['per_core']:15.0f} | {o['per_core']:13.0f} | "
              f"{g['per_core'] / o['per_core']:18.2f} |")


if __name__ == "__main__":
    main()
