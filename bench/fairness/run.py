#!/usr/bin/env python3
"""Fairness experiments: gort beside Go in the same run.

  ticker   A 10 ms ticker (a sleep loop) counts its ticks over 1.2 s while as
           many fibers/goroutines as workers block 1 s in a system call
           (usleep / nanosleep) or spin 1 s on the clock. Without a monitor
           that hands work to spare threads, the count stops for the second.
           gort's binary: <build>/bench/fairness/gort_fairness_ticker; Go's:
           bench/peers/go-fairness, built into <build>/bench/go_fairness.
  greedy   Two clients pipeline `BURN 10000` as fast as they read the replies
           (the server always has data to read), while a bystander on a third
           connection sends PING every 50 ms and times each PONG. dumb_fiber
           (<build>/apps/dumb_fiber) against the Go peer (bench/peers/go-dumb),
           each with 2 workers / GOMAXPROCS=2, runs alternating.

Runs are interleaved (gort, Go, Go, gort, ...) and each figure is the median
over --reps runs; ratios are gort/Go within this run. Targets (issue 14): the
ticker keeps >= 0.9x Go's ticks under blocking calls and >= 0.8x under busy
loops; the bystander's median PONG <= 2x Go's and its max <= 100 ms.

  python3 bench/fairness/run.py --build build/release [--reps 3] [--json out.json]
"""
import argparse
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
GO_FAIRNESS = ROOT / "bench" / "peers" / "go-fairness"
GO_DUMB = ROOT / "bench" / "peers" / "go-dumb"


def log(msg):
    print(f"fairness: {msg}", file=sys.stderr, flush=True)


def go_build(src, out, build):
    go = shutil.which("go")
    if go is None:
        sys.exit("fairness: 'go' not found (scripts/install-deps --bench installs golang-go)")
    cache = build / "go-cache"
    env = dict(os.environ, GOCACHE=str(cache / "cache"), GOPATH=str(cache / "gopath"),
               GOFLAGS="-mod=mod", GOPROXY="off")
    out.parent.mkdir(parents=True, exist_ok=True)
    log(f"building {out.name}: (cd {src} && go build -o {out} .)")
    r = subprocess.run([go, "build", "-o", str(out), "."], cwd=src, env=env,
                       capture_output=True, text=True, timeout=600)
    if r.returncode != 0:
        sys.exit(f"fairness: go build failed in {src}:\n{r.stderr[-2000:]}")
    return out


def median(xs):
    return statistics.median(xs) if xs else None


def ratio(a, b):
    return a / b if a is not None and b else None


# ---------------------------------------------------------------- ticker

def ticker_once(binary, offender, workers):
    cmd = [str(binary), "--offender", offender, "--workers", str(workers)]
    env = dict(os.environ, GORT_STUCK_WARN_MS="0")
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=60, env=env)
    if r.returncode != 0:
        sys.exit(f"fairness: {' '.join(cmd)} exited {r.returncode}:\n{r.stderr[-1000:]}")
    return json.loads(r.stdout.strip().splitlines()[-1])["ticks"]


def run_ticker(gort_bin, go_bin, reps, workers_list):
    rows = []
    for offender in ("syscall", "busy"):
        for workers in workers_list:
            g, o = [], []
            for rep in range(reps):
                order = [(gort_bin, g), (go_bin, o)]
                if rep % 2:
                    order.reverse()
                for binary, out in order:
                    out.append(ticker_once(binary, offender, workers))
            row = {"offender": offender, "workers": workers, "gort_ticks": g, "go_ticks": o,
                   "gort": median(g), "go": median(o)}
            row["ratio"] = ratio(row["gort"], row["go"])
            log(f"ticker {offender} workers={workers}: gort {row['gort']} ticks, Go {row['go']} "
                f"(ratio {row['ratio']:.2f})" if row["ratio"] is not None else f"ticker {offender}: no data")
            rows.append(row)
    return rows


# ---------------------------------------------------------------- greedy

class Server:
    def __init__(self, cmd, env):
        self.proc = subprocess.Popen(cmd + ["--host", "127.0.0.1", "--port", "0"], env=env,
                                     stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        deadline = time.monotonic() + 10
        line = ""
        while time.monotonic() < deadline:
            line = self.proc.stdout.readline()
            if "listening on" in line:
                break
        else:
            self.stop()
            sys.exit(f"fairness: {cmd[0]} did not announce its port: '{line.strip()}'")
        self.port = int(line.strip().rsplit(":", 1)[1])

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def greedy_client(port, stop, served):
    s = socket.create_connection(("127.0.0.1", port))
    s.settimeout(0.2)
    burst = b"BURN 10000\n" * 1024

    def writer():
        # send(), not sendall(): a timeout in the middle of sendall() hides how
        # much went out, and resending the whole burst would split a line.
        view, pos = memoryview(burst), 0
        while not stop.is_set():
            try:
                pos = (pos + s.send(view[pos:])) % len(burst)
            except socket.timeout:
                continue
            except OSError:
                return

    def reader():
        while not stop.is_set():
            try:
                n = len(s.recv(1 << 16))
            except socket.timeout:
                continue
            except OSError:
                return
            if n == 0:
                return
            served[0] += n

    ts = [threading.Thread(target=writer), threading.Thread(target=reader)]
    for t in ts:
        t.start()
    return s, ts


def greedy_once(server_cmd, env, seconds, period):
    server = Server(server_cmd, env)
    stop = threading.Event()
    served = [0]
    clients = [greedy_client(server.port, stop, served) for _ in range(2)]
    time.sleep(0.3)  # the greedy clients own the server now
    lat, lost = [], 0
    b = socket.create_connection(("127.0.0.1", server.port))
    b.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    b.settimeout(5.0)
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        t0 = time.monotonic()
        try:
            b.sendall(b"PING\n")
            got = b""
            while not got.endswith(b"\n"):
                chunk = b.recv(64)
                if not chunk:
                    raise OSError("closed")
                got += chunk
            lat.append((time.monotonic() - t0) * 1000)
        except (socket.timeout, OSError):
            lost += 1
            break
        time.sleep(max(0.0, period - (time.monotonic() - t0)))
    stop.set()
    for s, ts in clients:
        for t in ts:
            t.join()
        s.close()
    b.close()
    server.stop()
    return {"median_ms": median(lat), "max_ms": max(lat) if lat else None, "pings": len(lat),
            "timeouts": lost, "greedy_reply_bytes": served[0]}


def run_greedy(fiber_bin, go_bin, reps, seconds):
    env_gort = dict(os.environ, GORT_PROCS="2", GORT_STUCK_WARN_MS="0")
    env_go = dict(os.environ, GOMAXPROCS="2")
    g, o = [], []
    for rep in range(reps):
        order = [([str(fiber_bin)], env_gort, g), ([str(go_bin)], env_go, o)]
        if rep % 2:
            order.reverse()
        for cmd, env, out in order:
            r = greedy_once(cmd, env, seconds, 0.05)
            log(f"greedy {Path(cmd[0]).name}: median {r['median_ms']:.2f} ms, max {r['max_ms']:.2f} ms, "
                f"{r['pings']} PINGs, {r['timeouts']} timeouts")
            out.append(r)
    row = {"gort_runs": g, "go_runs": o,
           "gort_median_ms": median([r["median_ms"] for r in g]),
           "go_median_ms": median([r["median_ms"] for r in o]),
           "gort_max_ms": max(r["max_ms"] for r in g), "go_max_ms": max(r["max_ms"] for r in o),
           "gort_timeouts": sum(r["timeouts"] for r in g), "go_timeouts": sum(r["timeouts"] for r in o)}
    row["median_ratio"] = ratio(row["gort_median_ms"], row["go_median_ms"])
    return row


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--build", default="build/release", help="build folder (default build/release)")
    p.add_argument("--reps", type=int, default=3, help="runs per cell, interleaved (default 3)")
    p.add_argument("--seconds", type=float, default=5.0, help="bystander PINGs per greedy run (default 5 s)")
    p.add_argument("--experiments", default="ticker,greedy", help="comma-separated: ticker, greedy")
    p.add_argument("--json", help="write the results here too")
    a = p.parse_args()
    if a.reps <= 0 or a.seconds <= 0:
        sys.exit("fairness: --reps and --seconds must be positive")
    build = Path(a.build).resolve()
    exps = [e for e in a.experiments.split(",") if e]
    for e in exps:
        if e not in ("ticker", "greedy"):
            sys.exit(f"fairness: unknown experiment '{e}' (ticker, greedy)")
    results, checks = {}, []
    if "ticker" in exps:
        gort_bin = build / "bench" / "fairness" / "gort_fairness_ticker"
        if not gort_bin.exists():
            sys.exit(f"fairness: {gort_bin} not found (cmake --build {a.build})")
        go_bin = go_build(GO_FAIRNESS, build / "bench" / "go_fairness", build)
        rows = run_ticker(gort_bin, go_bin, a.reps, [1, 2])
        results["ticker"] = rows
        for r in rows:
            want = 0.9 if r["offender"] == "syscall" else 0.8
            checks.append((f"ticker {r['offender']} workers={r['workers']} >= {want}x Go's ticks",
                           r["ratio"] is not None and r["ratio"] >= want, f"{r['ratio']:.2f}x"))
    if "greedy" in exps:
        fiber_bin = build / "apps" / "dumb_fiber"
        if not fiber_bin.exists():
            sys.exit(f"fairness: {fiber_bin} not found (cmake --build {a.build})")
        go_bin = go_build(GO_DUMB, build / "bench" / "go_dumb_fairness", build)
        row = run_greedy(fiber_bin, go_bin, a.reps, a.seconds)
        results["greedy"] = row
        checks.append(("greedy: bystander median <= 2x Go's", row["median_ratio"] is not None
                       and row["median_ratio"] <= 2.0, f"{row['median_ratio']:.2f}x"))
        checks.append(("greedy: bystander max <= 100 ms", row["gort_max_ms"] <= 100 and row["gort_timeouts"] == 0,
                       f"{row['gort_max_ms']:.1f} ms"))
    print()
    if "ticker" in results:
        print(f"{'ticker (ticks in 1.2 s)':<28}{'workers':>8}{'gort':>8}{'Go':>8}{'gort/Go':>9}")
        for r in results["ticker"]:
            print(f"{'  ' + r['offender']:<28}{r['workers']:>8}{r['gort']:>8}{r['go']:>8}{r['ratio']:>9.2f}")
    if "greedy" in results:
        r = results["greedy"]
        print(f"\n{'greedy (bystander PONG, ms)':<28}{'gort':>10}{'Go':>10}{'gort/Go':>9}")
        print(f"{'  median':<28}{r['gort_median_ms']:>10.2f}{r['go_median_ms']:>10.2f}{r['median_ratio']:>9.2f}")
        print(f"{'  max':<28}{r['gort_max_ms']:>10.2f}{r['go_max_ms']:>10.2f}")
    print()
    for label, ok, value in checks:
        print(f"{'PASS' if ok else 'FAIL'}  {label}: {value}")
    if a.json:
        Path(a.json).write_text(json.dumps({"results": results,
                                            "checks": [{"check": c, "pass": ok, "value": v}
                                                       for c, ok, v in checks]}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
