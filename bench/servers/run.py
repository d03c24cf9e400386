#!/usr/bin/env python3
"""Server benchmarks: every DUMB server of apps/dumb/servers.def, the Go peer
(bench/peers/go-dumb) and the Node.js peer (bench/peers/node/dumb.js) under the
load generator dumb_load, on 127.0.0.1 only.

    python3 bench/servers/run.py [--quick] [--servers a,b] [--connections 100,1000]
                                 [--duration S] [--build build/release] [--out DIR]

Workloads (each server, each connection count):
  course   the course's pattern: every connection sends "BURN 300" every 100 ms
           (open loop, dumb_load --rate 10; latency counted from the intended send)
  ping     closed-loop "PING": each connection sends its next request as soon
           as the previous reply is in (dumb_load --closed-loop)

Connection counts: 100, 1000, 5000, 10000, 50000.  A server fails a step on
connections that do not all come up, connect failures, errors + timeouts above
1% of its requests or above 1% of its connections, or when it dies.  After a
failed step, a server that still had every connection up at once (so that
step has a measured window) goes on to the larger counts up to 10 000, the
steps every server is measured at, its runs marked failed, so that its CPU
and memory there are on record; a server that could not hold its
connections is not run at larger counts, and 50 000 is run only by servers
that passed every smaller step.  A step that needs more descriptors than the
hard RLIMIT_NOFILE allows is skipped for everyone.  Each run starts the
server afresh on a free port, waits until it accepts, runs dumb_load, then
stops it (SIGTERM, SIGKILL after a bound).  Every subprocess has a timeout.

Noise: before each run the script waits (up to 1 min) until the rest of the
machine is idle, and a step during whose window other processes used more
than 30% of a core is run once more; the quieter run is kept, and the tables
show the CPU others used.  Waiting and reruns have a budget of 10 minutes per
benchmark; past it, runs go ahead as they are.

Pinning: the server runs on the first half of this process's CPU affinity mask
and dumb_load on the rest (2 CPUs: server on one, load on the other); with one
CPU nothing is pinned.  gort-based binaries (dumb_fiber, dumb_load) and Go size
their worker pools from the mask; the other servers keep their default
--workers.

The measured window: from dumb_load's first progress line on which every
connection is up to its progress line at the end of --duration (dialling and
the final drain excluded).  Over that window, from /proc (summed over the
server's process tree, so dumb_prefork's workers count): server CPU time, user
and system, and context switches (per thread, summed), and the CPU the rest
of the machine used meanwhile (/proc/stat, with the hypervisor's steal
apart: the noise), and the softirq time on the server's CPUs (on loopback
part of it is the load generator's TCP work, charged to the server: see
procstat.softirq_seconds); at each progress line of the window on which
every connection is up: RSS (VmRSS) and threads, the largest RSS kept (not
at the window's end, when dumb_load may be closing connections); at every
progress line up to the window's end: the largest RSS and the connections
up then (for a server that never held them all); over the whole run: peak
RSS (VmHWM).  Requests in the window come from the progress lines'
cumulative "ok" counts; server CPU microseconds per request = window CPU /
window requests is the headline, recorded also split into user and system.
Latency percentiles are dumb_load's own: over its whole run (dialling
included) and over the steady state, the requests answered once every
connection was up (the tables and target checks use the latter); errors and
timeouts over the whole run.  dumb_load's send lag (how late it sent each
request, open loop) tells its own queueing apart from the server's.
dumb_load's CPU over the window is recorded too: at >= 90% of its core the
run is flagged load-generator-bound (throughput then measures the load
generator, not the server; CPU per request still compares servers).

Output (default build/bench-servers/): results.json (everything, raw),
results.csv (one row per run), logs/ (each server's and dumb_load's output),
and, when gnuplot is installed, SVG plots per workload of throughput, p99,
RSS and server CPU per request against connections (log x), one line per
server.  At the end: issue 7's targets, as ratios within the run, PASS/FAIL.

Time, on 2 cores: --quick (100 and 1000 connections, 3 s per step, every
server) takes about 3 minutes; the full run (10 s per step) about 15 minutes
on a quiet machine, and at most about 35 (96 runs of about 15 s if every
server survived every step, plus the 10-minute noise budget); --repeat N
multiplies it.
"""

import argparse
import json
import os
import platform
import re
import resource
import select
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import report
from procstat import kill_tree, machine_cpu, sample_memory, sample_tree, softirq_seconds
from report import fmt, log

ROOT = Path(__file__).resolve().parents[2]
SERVERS_DEF = ROOT / "apps" / "dumb" / "servers.def"
GO_DUMB_SRC = ROOT / "bench" / "peers" / "go-dumb"
NODE_DUMB = ROOT / "bench" / "peers" / "node" / "dumb.js"

FULL_CONNECTIONS = [100, 1000, 5000, 10000, 50000]
MEASURED_UP_TO = 10000       # failed servers that still hold their connections run up to here
QUICK_CONNECTIONS = [100, 1000]
WORKLOADS = {
    "course": ["--cmd", "BURN 300", "--rate", "10"],
    "ping": ["--cmd", "PING", "--closed-loop"],
}
MAX_FAILED_FRACTION = 0.01   # errors + timeouts per request above this fail a step
LOADGEN_BOUND = 0.90         # dumb_load CPU / window above this: load-generator-bound
FD_SLACK = 64                # descriptors a process needs besides its connections
QUIET_CPU = 0.15             # cores the rest of the machine may use before a run starts
QUIET_WAIT = 60.0            # how long to wait for that, at most, per run
NOISE_BUDGET = 600.0         # seconds of waiting and reruns over the whole benchmark
NOISY_CPU = 0.30             # cores used by others during a window: run the step again (once)
START_TIMEOUT = 10.0         # server must accept within this
STOP_BOUND = 5.0             # after SIGTERM, before SIGKILL (servers drain <= 2 s)

PROGRESS_RE = re.compile(
    r"^\[\s*(?P<t>\d+)s\] conns (?P<conns>\d+)/(?P<target>\d+)\s+(?P<rps>[\d.]+) req/s.*?"
    r"\|\s*ok (?P<ok>\d+)\s+timeouts (?P<timeouts>\d+)\s+errors (?P<errors>\d+)")



# ------------------------------------------------------------------ table ---

def table_servers():
    """The DUMB rows of servers.def, in table order."""
    rows = []
    row_re = re.compile(r"^GORT_SERVER\(\s*(\w+)\s*,\s*(\w+)\s*,")
    for line in SERVERS_DEF.read_text().splitlines():
        m = row_re.match(line.strip())
        if m and m.group(2) == "dumb":
            rows.append(m.group(1))
    return rows


# ---------------------------------------------------------------- helpers ---

def free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_accepting(port, proc, timeout):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            return False
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return True
        except OSError:
            time.sleep(0.05)
    return False


def stop_server(proc):
    """SIGTERM, then SIGKILL to the whole tree after STOP_BOUND; the exit status."""
    if proc.poll() is not None:
        return proc.returncode
    proc.send_signal(signal.SIGTERM)
    try:
        return proc.wait(timeout=STOP_BOUND)
    except subprocess.TimeoutExpired:
        kill_tree(proc.pid, signal.SIGKILL)
        try:
            return proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            return None


def raise_nofile():
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    elif hard == resource.RLIM_INFINITY:
        resource.setrlimit(resource.RLIMIT_NOFILE, (1 << 20, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)


def cpu_split(cpus):
    """(server CPUs, load CPUs); both None when there is nothing to split."""
    cpus = sorted(cpus)
    if len(cpus) < 2:
        return None, None
    half = len(cpus) // 2
    return cpus[:half], cpus[half:]


def pinned(cmd, cpus):
    if cpus is None or not shutil.which("taskset"):
        return cmd
    return ["taskset", "-c", ",".join(map(str, cpus))] + cmd


def machine_info():
    model = ""
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem_kib = 0
    try:
        for line in open("/proc/meminfo"):
            if line.startswith("MemTotal:"):
                mem_kib = int(line.split()[1])
    except OSError:
        pass
    commit = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"],
                            capture_output=True, text=True, timeout=10).stdout.strip()
    dirty = subprocess.run(["git", "-C", str(ROOT), "status", "--porcelain", "--untracked-files=no"],
                           capture_output=True, text=True, timeout=10).stdout.strip()
    return {"nproc": os.cpu_count(), "affinity": sorted(os.sched_getaffinity(0)),
            "cpu_model": model, "kernel": platform.release(), "mem_total_kib": mem_kib,
            "git_commit": commit, "git_dirty": bool(dirty),
            "date_utc": time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime())}


# ------------------------------------------------------------------ peers ---

def build_go_peer(build, out_dir):
    go = shutil.which("go")
    if not go:
        return None, "go not on PATH (scripts/install-deps --bench installs golang-go)"
    cache = build / "go-cache"
    env = dict(os.environ, GOCACHE=str(cache / "cache"), GOPATH=str(cache / "gopath"),
               GOFLAGS="-mod=mod", GOPROXY="off")
    exe = build / "bench" / "go-dumb"
    exe.parent.mkdir(parents=True, exist_ok=True)
    log(f"building the Go peer: (cd {GO_DUMB_SRC} && go build -o {exe} .)")
    try:
        r = subprocess.run([go, "build", "-o", str(exe), "."], cwd=GO_DUMB_SRC, env=env,
                           capture_output=True, text=True, timeout=300)
    except subprocess.TimeoutExpired:
        return None, "go build timed out"
    if r.returncode != 0:
        return None, f"go build failed: {r.stderr.strip()[-500:]}"
    return [str(exe)], None


def node_peer():
    node = shutil.which("node") or shutil.which("nodejs")
    if not node:
        return None, "node not on PATH (scripts/install-deps --bench installs nodejs)"
    # --stack-size directly: dumb.js would otherwise re-exec itself with it,
    # and the benchmark would measure two processes.
    return [node, "--stack-size=7000", str(NODE_DUMB)], None


# -------------------------------------------------------------------- run ---

def run_one(name, base_cmd, workload, conns, args, cpus, out_dir):
    """One server, one workload, one connection count; a result dict."""
    server_cpus, load_cpus = cpus
    port = free_port()
    tag = f"{name}.{workload}.{conns}"
    logs = out_dir / "logs"
    res = {"server": name, "workload": workload, "connections": conns, "port": port,
           "failed": False, "failure": ""}
    srv_log = open(logs / f"{tag}.server.log", "w")
    cmd = pinned(base_cmd + ["--host", "127.0.0.1", "--port", str(port)], server_cpus)
    res["server_cmd"] = cmd
    proc = subprocess.Popen(cmd, stdout=srv_log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                            start_new_session=True)
    try:
        if not wait_accepting(port, proc, START_TIMEOUT):
            res.update(failed=True, failure="server did not start")
            return res
        time.sleep(0.2)  # let a forking server finish forking
        load_cmd = pinned([str(args.build / "apps" / "dumb_load"), "--host", "127.0.0.1",
                           "--port", str(port), "--connections", str(conns),
                           "--duration", f"{args.duration}s", "--progress", "--json"]
                          + WORKLOADS[workload], load_cpus)
        res["load_cmd"] = load_cmd
        res.update(measure(proc, load_cmd, args.duration, conns, logs / f"{tag}.load", server_cpus))
        if proc.poll() is not None:
            res.update(failed=True, failure=f"server died (status {proc.returncode})")
    finally:
        res["server_exit"] = stop_server(proc)
        srv_log.close()
    judge(res, conns)
    return res


def measure(proc, load_cmd, duration, conns, log_prefix, server_cpus=None):
    out = {}
    json_path = Path(str(log_prefix) + ".json")
    progress_log = open(str(log_prefix) + ".progress.log", "w")
    with open(json_path, "w") as json_file:
        load = subprocess.Popen(load_cmd, stdout=json_file, stderr=subprocess.PIPE,
                                stdin=subprocess.DEVNULL, start_new_session=True)
    t_start = time.monotonic()
    deadline = t_start + duration + 45 + conns / 500  # dialling, the drain, slack
    start = end = None   # (progress dict, server sample, load sample, monotonic time)
    mem = (0, 0)         # the largest RSS (KiB) sampled in the window with every connection up, threads then
    mem_any = (0, 0)     # the largest RSS (KiB) sampled at any progress line up to the window's end, connections up then
    peak_hwm = 0
    buf = b""
    fd = load.stderr.fileno()
    while True:
        now = time.monotonic()
        if now > deadline:
            out["load_timed_out"] = True
            kill_tree(load.pid, signal.SIGKILL)
            break
        r, _, _ = select.select([fd], [], [], 1.0)
        if not r:
            continue
        chunk = os.read(fd, 65536)
        if not chunk:
            break
        buf += chunk
        while b"\n" in buf:
            line, buf = buf.split(b"\n", 1)
            text = line.decode(errors="replace")
            progress_log.write(text + "\n")
            m = PROGRESS_RE.match(text)
            if not m:
                continue
            p = {k: int(m.group(k)) for k in ("t", "conns", "target", "ok", "timeouts", "errors")}
            if end is not None:
                continue
            if start is None and p["conns"] >= conns:
                # Window start: every connection is up.  Sample the server
                # right after the progress line, the load generator too.
                start = (p, sample_tree(proc.pid), sample_tree(load.pid, full=False), time.monotonic(),
                         machine_cpu(), softirq_seconds(server_cpus))
            elif start is not None and p["t"] >= duration:
                end = (p, sample_tree(proc.pid), sample_tree(load.pid, full=False), time.monotonic(),
                       machine_cpu(), softirq_seconds(server_cpus))
            if end is None:
                # Memory once a second.  Not at the window's end: by then
                # dumb_load may be closing connections, and a
                # thread-per-connection server's threads (and their stacks)
                # go with them.  rss_kib counts only samples with every
                # connection up; rss_max_kib any, with the connections up
                # then -- for a server that never held them all, the most
                # memory it took while trying: a lower bound on what
                # holding them all would take (report.py's RSS checks).
                rss, threads = sample_memory(proc.pid)
                if start is not None and p["conns"] >= conns and rss > mem[0]:
                    mem = (rss, threads)
                if rss > mem_any[0]:
                    mem_any = (rss, p["conns"])
    try:
        load.wait(timeout=10)
    except subprocess.TimeoutExpired:
        kill_tree(load.pid, signal.SIGKILL)
        load.wait(timeout=10)
    progress_log.close()
    after = sample_tree(proc.pid)
    out["load_exit"] = load.returncode
    out["load_wall_s"] = round(time.monotonic() - t_start, 3)
    try:
        summary = json.loads(json_path.read_text() or "{}")
    except ValueError:
        summary = {}
    out["load_json"] = summary
    for k in ("requests", "ok", "timeouts", "errors", "connect_failures", "connections_peak",
              "throughput", "elapsed_s"):
        out[k] = summary.get(k)
    lat = summary.get("latency_ms", {})
    for k in ("p50", "p90", "p99", "p999", "max", "mean"):
        out[f"{k}_ms"] = lat.get(k)
    # The steady state: requests answered once every connection was up
    # (dumb_load starts it at the progress line the window starts at).
    steady = summary.get("latency_all_up_ms", {})
    for k in ("p50", "p90", "p99", "p999", "max"):
        out[f"steady_{k}_ms"] = steady.get(k)
    out["send_lag_p99_ms"] = summary.get("send_lag_ms", {}).get("p99")
    if start and end and end[3] > start[3]:
        ps, ss, ls, ts, (busy_s, steal_s), sirq_s = start
        pe, se, le, te, (busy_e, steal_e), sirq_e = end
        win = te - ts
        reqs = pe["ok"] - ps["ok"]
        cpu_user = se["utime"] - ss["utime"]
        cpu_sys = se["stime"] - ss["stime"]
        load_cpu = (le["utime"] + le["stime"]) - (ls["utime"] + ls["stime"])
        out.update({
            "window_s": round(win, 3), "window_from_t": ps["t"], "window_to_t": pe["t"],
            "window_requests": reqs, "window_throughput": round(reqs / win, 1),
            "server_cpu_user_s": round(cpu_user, 3), "server_cpu_sys_s": round(cpu_sys, 3),
            "server_cpu_util": round((cpu_user + cpu_sys) / win, 3),
            "cpu_us_per_request": round((cpu_user + cpu_sys) * 1e6 / reqs, 3) if reqs > 0 else None,
            "cpu_user_us_per_request": round(cpu_user * 1e6 / reqs, 3) if reqs > 0 else None,
            "cpu_sys_us_per_request": round(cpu_sys * 1e6 / reqs, 3) if reqs > 0 else None,
            # Softirq on the server's CPUs, whoever it was charged to (mostly
            # the server, inside its system time): procstat.softirq_seconds.
            "server_cpus_softirq_us_per_request": round((sirq_e - sirq_s) * 1e6 / reqs, 3)
            if reqs > 0 and server_cpus is not None else None,
            "load_cpu_s": round(load_cpu, 3), "load_cpu_util": round(load_cpu / win, 3),
            "load_generator_bound": load_cpu / win >= LOADGEN_BOUND,
            # The noise: CPU the rest of the machine used meanwhile, and steal.
            "other_cpu_util": round(max(0.0, (busy_e - busy_s) - cpu_user - cpu_sys - load_cpu) / win, 3),
            "steal_util": round((steal_e - steal_s) / win, 3),
            "rss_kib": mem[0] or None, "threads": mem[1] or None, "processes": se["processes"],
            "rss_at_window_end_kib": se["rss_kib"], "threads_at_window_end": se["threads"],
            "vcsw": se["vcsw"] - ss["vcsw"], "ivcsw": se["ivcsw"] - ss["ivcsw"],
            "ctx_switches": (se["vcsw"] - ss["vcsw"]) + (se["ivcsw"] - ss["ivcsw"]),
            "ctx_switches_per_request": round(((se["vcsw"] - ss["vcsw"]) + (se["ivcsw"] - ss["ivcsw"])) / reqs, 3)
            if reqs > 0 else None,
        })
        peak_hwm = max(se["hwm_kib"], after["hwm_kib"])
    else:
        out["window_missing"] = ("connections never all up" if start is None
                                 else "no progress line at the end of --duration")
        peak_hwm = after["hwm_kib"]
    out["peak_rss_kib"] = peak_hwm
    out["rss_max_kib"] = mem_any[0] or None
    out["rss_max_conns"] = mem_any[1] if mem_any[0] else None
    return out


def wait_for_quiet(bound):
    """Waits (at most `bound` s) until the rest of the machine uses under
    QUIET_CPU cores over a second; the seconds waited, or None if it never was."""
    t0 = time.monotonic()
    while True:
        b0, _ = machine_cpu()
        time.sleep(1.0)
        b1, _ = machine_cpu()
        if b1 - b0 < QUIET_CPU:
            return round(time.monotonic() - t0, 1)
        if time.monotonic() - t0 > bound:
            return None


class NoiseBudget:
    """Bounds the time spent on noise (waiting for quiet, running again) over
    the whole benchmark, so that a machine that is never quiet costs at most
    NOISE_BUDGET seconds more."""

    def __init__(self, seconds):
        self.left = seconds  # seconds of waiting and reruns still allowed

    def spend(self, since):
        self.left -= time.monotonic() - since


def run_quietly(name, base_cmd, workload, conns, args, cpus, out_dir, budget):
    """run_one on a quiet machine: waits for other work (builds, tests) to
    stop first, and runs the step once more when something else took over
    NOISY_CPU cores during its window; keeps the quieter of the two."""
    runs = []
    for attempt in range(2):
        t = time.monotonic()
        waited = wait_for_quiet(max(1.0, min(QUIET_WAIT, budget.left)))
        budget.spend(t + 1.0)  # the first second is the measurement itself
        if waited is None or waited >= 2:
            log(f"  waited {waited if waited is not None else '(in vain)'} s for the machine to be quiet"
                f" (noise budget left: {max(0, budget.left):.0f} s)")
        t = time.monotonic()
        r = run_one(name, base_cmd, workload, conns, args, cpus, out_dir)
        if attempt:
            budget.spend(t)
        r["quiet_wait_s"] = waited
        runs.append(r)
        if (r.get("other_cpu_util") or 0) <= NOISY_CPU or budget.left <= 0:
            break
        log(f"  other processes used {r['other_cpu_util'] * 100:.0f}% of a core meanwhile: once more")
    best = min(runs, key=lambda r: r.get("other_cpu_util") if r.get("other_cpu_util") is not None else 9)
    best["attempts"] = len(runs)
    return best


def median_of(runs):
    """One result from repetitions: the median of each number, the raw runs kept."""
    if len(runs) == 1:
        return runs[0]
    out = dict(runs[0])
    for k, v in runs[0].items():
        if isinstance(v, (int, float)) and not isinstance(v, bool):
            vals = sorted(r[k] for r in runs if isinstance(r.get(k), (int, float)))
            if vals and vals[0] != vals[-1]:
                mid = len(vals) // 2
                out[k] = vals[mid] if len(vals) % 2 else (vals[mid - 1] + vals[mid]) / 2
    out["load_generator_bound"] = sum(bool(r.get("load_generator_bound")) for r in runs) * 2 > len(runs)
    failed = [r for r in runs if r["failed"]]
    out["failed"] = bool(failed)
    out["failure"] = "; ".join(f"repetition {runs.index(r) + 1}: {r['failure']}" for r in failed)
    out["repeats"] = runs
    return out


def judge(res, conns):
    if res["failed"]:
        return
    reasons = []
    if res.get("load_timed_out"):
        reasons.append("dumb_load did not finish in time")
    if not res.get("load_json"):
        reasons.append(f"dumb_load printed no summary (exit {res.get('load_exit')})")
    else:
        if (res.get("connections_peak") or 0) < conns:
            reasons.append(f"only {res.get('connections_peak')} of {conns} connections came up")
        if res.get("connect_failures"):
            reasons.append(f"{res['connect_failures']} connect failures")
        # Both bounds: in a closed loop a starved connection adds one timeout
        # per --timeout while a served one adds thousands of replies.
        reqs = res.get("requests") or 0
        bad = (res.get("errors") or 0) + (res.get("timeouts") or 0)
        if bad > MAX_FAILED_FRACTION * max(reqs, 1) or bad > MAX_FAILED_FRACTION * conns:
            reasons.append(f"{res.get('errors')} errors + {res.get('timeouts')} timeouts "
                           f"({reqs} requests, {conns} connections)")
    if res.get("window_missing") and not reasons:
        reasons.append(res["window_missing"])
    if reasons:
        res.update(failed=True, failure="; ".join(reasons))


# ------------------------------------------------------------------- main ---

def parse_args(argv):
    ap = argparse.ArgumentParser(
        description=__doc__,
        epilog="Everything runs on 127.0.0.1; nothing else touches the network.",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--build", type=Path, default=ROOT / "build" / "release",
                    help="Release build directory with apps/ (default build/release)")
    ap.add_argument("--out", type=Path, default=None,
                    help="output directory (default build/bench-servers)")
    ap.add_argument("--quick", action="store_true",
                    help="100 and 1000 connections, 3 s per step, every server")
    ap.add_argument("--servers", default=None,
                    help="comma-separated subset (names from apps/dumb/servers.def, go-dumb, node-dumb)")
    ap.add_argument("--connections", default=None,
                    help="comma-separated connection counts (default 100,1000,5000,10000,50000)")
    ap.add_argument("--workloads", default=None, help="comma-separated: course,ping (default both)")
    ap.add_argument("--duration", type=float, default=None,
                    help="seconds of load per step, dialling included (default 10; --quick 3)")
    ap.add_argument("--repeat", type=int, default=1,
                    help="run each step N times (a fresh server each time) and report the median "
                         "of every figure; a step fails if any repetition fails (default 1)")
    ap.add_argument("--replot", type=Path, default=None,
                    help="redo tables, plots and target checks from a results.json (or the directory "
                         "holding one), running nothing")
    a = ap.parse_args(argv)
    a.duration = a.duration or (3.0 if a.quick else 10.0)
    a.build = a.build.resolve()
    a.out = (a.out or (ROOT / "build" / "bench-servers")).resolve()
    return a


def main(argv):
    args = parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    if args.replot:
        source = args.replot / "results.json" if args.replot.is_dir() else args.replot
        try:
            data = json.loads(source.read_text())
        except (OSError, ValueError) as e:
            log(f"--replot {args.replot}: cannot read results: {e}")
            return 2
        report.write_report(data, args.out)
        return 0
    (args.out / "logs").mkdir(exist_ok=True)
    notes = []
    load_bin = args.build / "apps" / "dumb_load"
    if not load_bin.exists():
        log(f"{load_bin} is missing: build Release first (make build)")
        return 2

    # The servers: the table's DUMB rows, then the peers.
    commands, unavailable = {}, {}
    for name in table_servers():
        exe = args.build / "apps" / name
        if exe.exists():
            commands[name] = [str(exe)]
        else:
            unavailable[name] = f"{exe} not built"
    wanted = args.servers.split(",") if args.servers else None
    if wanted is None or "go-dumb" in wanted:
        cmd, why = build_go_peer(args.build, args.out)
        if cmd:
            commands["go-dumb"] = cmd
        else:
            unavailable["go-dumb"] = why
    if wanted is None or "node-dumb" in wanted:
        cmd, why = node_peer()
        if cmd:
            commands["node-dumb"] = cmd
        else:
            unavailable["node-dumb"] = why
    if wanted:
        unknown = [w for w in wanted if w not in commands and w not in unavailable]
        if unknown:
            log(f"unknown servers: {', '.join(unknown)}; known: {', '.join(list(commands) + list(unavailable))}")
            return 2
        commands = {k: v for k, v in commands.items() if k in wanted}
    for name, why in unavailable.items():
        if wanted is None or name in wanted:
            notes.append(f"{name} not run: {why}")
            log(f"skipping {name}: {why}")
    servers = list(commands)

    conn_steps = ([int(c) for c in args.connections.split(",")] if args.connections
                  else QUICK_CONNECTIONS if args.quick else FULL_CONNECTIONS)
    workloads = args.workloads.split(",") if args.workloads else list(WORKLOADS)
    for w in workloads:
        if w not in WORKLOADS:
            log(f"unknown workload {w}; known: {', '.join(WORKLOADS)}")
            return 2

    soft, hard = raise_nofile()
    log(f"RLIMIT_NOFILE raised to {soft} (hard {hard}); children inherit it")
    runnable_steps = []
    for c in conn_steps:
        if c + FD_SLACK > soft:
            msg = (f"{c} connections skipped for every server: a server needs {c + FD_SLACK} "
                   f"descriptors and the hard limit (ulimit -Hn) is {hard}")
            log(msg)
            notes.append(msg)
        else:
            runnable_steps.append(c)
    ports = [int(x) for x in open("/proc/sys/net/ipv4/ip_local_port_range").read().split()]
    if runnable_steps and max(runnable_steps) > ports[1] - ports[0]:
        notes.append(f"ephemeral port range {ports} is smaller than {max(runnable_steps)} connections")

    affinity = sorted(os.sched_getaffinity(0))
    cpus = cpu_split(affinity)
    if cpus[0] is None:
        msg = f"only {len(affinity)} CPU in the affinity mask: server and dumb_load not pinned, sharing it"
    else:
        msg = f"server pinned to CPUs {cpus[0]}, dumb_load to CPUs {cpus[1]} (taskset -c)"
        if not shutil.which("taskset"):
            msg = "taskset (util-linux) missing: not pinned"
            cpus = (None, None)
    log(msg)
    notes.append(msg)

    info = machine_info()
    data = {"machine": info, "command": " ".join([sys.argv[0]] + argv), "quick": args.quick,
            "duration_s": args.duration, "repeat": args.repeat, "connections": conn_steps, "workloads": workloads,
            "servers": servers, "pinning": {"server": cpus[0], "load": cpus[1]},
            "nofile": [soft, hard], "thresholds": {"max_failed_fraction": MAX_FAILED_FRACTION,
                                                   "load_generator_bound": LOADGEN_BOUND},
            "notes": notes, "results": []}
    results = data["results"]

    total = len(workloads) * len(runnable_steps) * len(servers) * args.repeat
    done, t0 = 0, time.monotonic()
    budget = NoiseBudget(NOISE_BUDGET)
    for workload in workloads:
        dropped = {}  # server -> the step it failed without holding its connections
        limited = {}  # server -> the first step it failed while holding them
        for conns in runnable_steps:
            for name in servers:
                if name in dropped or (name in limited and conns > MEASURED_UP_TO):
                    done += args.repeat
                    continue
                elapsed = time.monotonic() - t0
                left = total - done
                rep = f" x{args.repeat}" if args.repeat > 1 else ""
                per = elapsed / done if done else args.duration + 5
                log(f"[{done + 1}/{total}] {workload} {conns} conns: {name}{rep}  "
                    f"(elapsed {elapsed / 60:.1f} min, at most ~{left * per / 60:.1f} min left)")
                runs = [run_quietly(name, commands[name], workload, conns, args, cpus, args.out, budget)
                        for _ in range(args.repeat)]
                r = median_of(runs)
                results.append(r)
                done += args.repeat
                summary = (f"  -> {fmt(r.get('window_throughput'), 0)} req/s, p99 {fmt(r.get('p99_ms'), 2)} ms, "
                           f"CPU {fmt(r.get('cpu_us_per_request'), 1)} µs/req, "
                           f"RSS {fmt((r.get('rss_kib') or 0) / 1024, 1)} MiB, "
                           f"load CPU {fmt((r.get('load_cpu_util') or 0) * 100, 0)}%")
                if r["failed"]:
                    summary += f"  FAILED: {r['failure']}"
                    if r.get("rss_kib") is None:
                        dropped[name] = conns
                    else:
                        limited.setdefault(name, conns)
                log(summary)
                (args.out / "results.json").write_text(json.dumps(data, indent=1))
        for name, conns in dropped.items():
            larger = [c for c in runnable_steps if c > conns]
            if larger:
                notes.append(f"{workload}: {name} failed at {conns} connections without holding them all; "
                             f"not run at {', '.join(map(str, larger))}")
        for name, conns in limited.items():
            larger = [c for c in runnable_steps if c > MEASURED_UP_TO]
            notes.append(f"{workload}: {name} failed at {conns} connections but held them all; run as a "
                         f"failing server up to {MEASURED_UP_TO}"
                         + (f", not at {', '.join(map(str, larger))}" if larger else ""))
    data["wall_s"] = round(time.monotonic() - t0, 1)
    (args.out / "results.json").write_text(json.dumps(data, indent=1))
    log(f"done in {data['wall_s'] / 60:.1f} min; results in {args.out}")
    report.write_report(data, args.out)
    return 0


def cli(main):
    """The scripts' entry: main(argv)'s status, 130 on Ctrl-C."""
    try:
        sys.exit(main(sys.argv[1:]))
    except KeyboardInterrupt:
        log("interrupted")
        sys.exit(130)


if __name__ == "__main__":
    cli(main)
