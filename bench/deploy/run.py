#!/usr/bin/env python3
"""What scaling out costs (docs/DEPLOYMENT.md), on hosts made of network
namespaces (tests/multihost/test_scaleout.py builds them the same way):

    sudo python3 bench/deploy/run.py [--build build/release] [--rounds 3]
                                     [--users 1000] [--lines 300] [--json]

1. HAProxy: dumb_load (h1) runs closed-loop PING for --seconds against
   dumb_fiber (h2) directly, then through HAProxy (h1, deploy/haproxy/dumb.cfg
   with both backends on h2's one dumb_fiber), in ABBA order over --rounds;
   each round ends with an open-loop run straight at dumb_fiber at the rate
   the round's HAProxy run reached. Reports requests/s, requests per second
   of dumb_fiber CPU, and HAProxy's CPU per request (from /proc, by process).
2. Redis: chat_fiber --redis on h2 and h3, Redis on h1, --users idle users
   on each node; a speaker on h2 says --lines lines at 50 lines/s; a hearer
   on h2 (same node) and one on h3 (across Redis) time each line's arrival.
   Reports p50 / p99 / max for both.

Needs root (ip netns). Everything runs in namespaces it creates and deletes;
every step is bounded in time. The machine is shared: read ratios within
one run, not absolute figures.
"""

import argparse
import ctypes
import json
import os
import re
import socket
import statistics
import subprocess
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "..", "tests", "multihost"))
from test_scaleout import Hosts, SUBNET, wait_for_line  # noqa: E402

libc = ctypes.CDLL("libc.so.6", use_errno=True)
CLONE_NEWNET = 0x40000000


def in_netns(ns, fn):
    """Runs fn() with this thread in network namespace ns (sockets it makes
    stay there), then comes back."""
    own = os.open("/proc/self/ns/net", os.O_RDONLY)
    target = os.open(f"/var/run/netns/{ns}", os.O_RDONLY)
    try:
        if libc.setns(target, CLONE_NEWNET) != 0:
            raise OSError(ctypes.get_errno(), "setns")
        return fn()
    finally:
        libc.setns(own, CLONE_NEWNET)
        os.close(own)
        os.close(target)


def cpu_seconds(pid):
    fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def child_pid(proc):
    """The process `ip netns exec` became (it execs, so the same pid)."""
    return proc.pid


def dumb_load(hosts, build, port, seconds, connections, rate=None):
    """Closed-loop PING, or open loop at `rate` requests per connection per second."""
    pace = ["--rate", f"{rate:.1f}"] if rate else ["--closed-loop"]
    r = hosts.exec(hosts.hosts[0], f"{build}/apps/dumb_load", "--host", "127.0.0.1" if port == 8080 else f"{SUBNET}.2",
                   "--port", str(port), *pace, "--cmd", "PING", "--connections", str(connections),
                   "--duration", str(seconds), "--json", check=False, timeout=seconds + 60)
    return json.loads(r.stdout)


def haproxy_part(hosts, build, project, args):
    h1, h2, _ = hosts.hosts
    server = hosts.start(h2, f"{build}/apps/dumb_fiber", "--host", "0.0.0.0", "--port", "8090")
    wait_for_line(server, r"listening on", 30)
    stats = f"/tmp/{hosts.tag}-haproxy.sock"
    env = dict(os.environ, DUMB_LISTEN="127.0.0.1:8080", DUMB_BACKEND_1=f"{SUBNET}.2:8090",
               DUMB_BACKEND_2=f"{SUBNET}.2:8090", HAPROXY_STATS=stats)
    haproxy = hosts.start(h1, "haproxy", "-db", "-f", f"{project}/deploy/haproxy/dumb.cfg", env=env)
    deadline = time.monotonic() + 20
    while not os.path.exists(stats) and time.monotonic() < deadline:
        time.sleep(0.05)
    # "direct at HAProxy's rate": open loop against dumb_fiber at the rate the
    # last HAProxy run reached, so that the server's CPU per request is
    # compared at the same load (a server that is not saturated finds fewer
    # ready connections per wake-up, whoever sends).
    runs = {"direct": [], "haproxy": [], "direct_at_haproxy_rate": []}
    last_haproxy_rps = 0.0
    for r in range(args.rounds):
        order = ["direct", "haproxy"] if r % 2 == 0 else ["haproxy", "direct"]
        for name in order + ["direct_at_haproxy_rate"]:
            s0, h0 = cpu_seconds(server.pid), cpu_seconds(haproxy.pid)
            rate = last_haproxy_rps / args.connections if name == "direct_at_haproxy_rate" else None
            out = dumb_load(hosts, build, 8080 if name == "haproxy" else 8090, args.seconds, args.connections, rate)
            if name == "haproxy":
                last_haproxy_rps = out.get("throughput", 0)
            s1, h1c = cpu_seconds(server.pid), cpu_seconds(haproxy.pid)
            ok = out.get("ok", 0)
            runs[name].append({"rps": out.get("throughput", 0), "ok": ok, "errors": out.get("errors", 0),
                               "server_cpu_s": s1 - s0, "haproxy_cpu_s": h1c - h0})
            print(f"round {r + 1} {name}: {runs[name][-1]}", file=sys.stderr, flush=True)
    os.unlink(stats) if os.path.exists(stats) else None
    summary = {}
    for name, rs in runs.items():
        summary[name] = {
            "rps": statistics.median(x["rps"] for x in rs),
            "per_server_cpu_s": statistics.median(x["ok"] / x["server_cpu_s"] for x in rs if x["server_cpu_s"] > 0),
            "haproxy_us_per_request": statistics.median(1e6 * x["haproxy_cpu_s"] / x["ok"] for x in rs if x["ok"]),
            "errors": sum(x["errors"] for x in rs),
        }
    server.terminate()
    haproxy.terminate()
    return summary


def connect_user(ns, host, port):
    def make():
        s = socket.create_connection((host, port), timeout=10)
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return s
    s = in_netns(ns, make)
    f = s.makefile("rb")
    welcome = f.readline()
    return s, f, welcome


def redis_part(hosts, build, args):
    h1, h2, h3 = hosts.hosts
    redis = hosts.start(h1, "redis-server", "--bind", "0.0.0.0", "--port", "6379", "--protected-mode", "no",
                        "--save", "", "--appendonly", "no")
    wait_for_line(redis, r"Ready to accept connections", 20)
    nodes = []
    for ns in (h2, h3):
        p = hosts.start(ns, f"{build}/apps/chat_fiber", "--host", "0.0.0.0", "--port", "8091", "--redis",
                        f"{SUBNET}.1:6379")
        wait_for_line(p, r"listening on", 30)
        nodes.append(p)
    time.sleep(1)  # the nodes' buses subscribe
    idle = [in_netns(ns, lambda: socket.create_connection(("127.0.0.1", 8091), timeout=10))
            for ns in (h2, h3) for _ in range(args.users)]
    speaker, _, _ = connect_user(h2, "127.0.0.1", 8091)
    local = connect_user(h2, "127.0.0.1", 8091)
    remote = connect_user(h3, "127.0.0.1", 8091)
    sent = {}
    arrivals = {"local": {}, "remote": {}}
    import threading

    def hear(name, f):
        pat = re.compile(rb"\]: probe (\d+)")
        while True:
            line = f.readline()
            if not line:
                return
            m = pat.search(line)
            if m:
                arrivals[name][int(m.group(1))] = time.monotonic()
                if int(m.group(1)) == args.lines - 1:
                    return

    threads = [threading.Thread(target=hear, args=(n, u[1]), daemon=True) for n, u in (("local", local), ("remote", remote))]
    for t in threads:
        t.start()
    for i in range(args.lines):
        sent[i] = time.monotonic()
        speaker.sendall(f"probe {i}\n".encode())
        time.sleep(0.02)
    for t in threads:
        t.join(timeout=10)
    out = {}
    for name, got in arrivals.items():
        lat = sorted(1000 * (got[i] - sent[i]) for i in got)
        out[name] = {"lines": len(lat), "p50_ms": lat[len(lat) // 2] if lat else None,
                     "p99_ms": lat[min(len(lat) - 1, int(0.99 * len(lat)))] if lat else None,
                     "max_ms": lat[-1] if lat else None}
    for s in idle + [speaker, local[0], remote[0]]:
        s.close()
    for p in nodes + [redis]:
        p.terminate()
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--build", default="build/release")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--seconds", type=int, default=8)
    ap.add_argument("--connections", type=int, default=100)
    ap.add_argument("--users", type=int, default=1000)
    ap.add_argument("--lines", type=int, default=300)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    if os.geteuid() != 0:
        ap.error("needs root (ip netns)")
    build = os.path.abspath(args.build)
    project = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
    import resource
    resource.setrlimit(resource.RLIMIT_NOFILE, (resource.getrlimit(resource.RLIMIT_NOFILE)[1],) * 2)
    with Hosts(3) as hosts:
        result = {"haproxy": haproxy_part(hosts, build, project, args), "redis": redis_part(hosts, build, args)}
    if args.json:
        print(json.dumps(result))
        return 0
    d, h = result["haproxy"]["direct"], result["haproxy"]["haproxy"]
    print(f"dumb_fiber closed-loop PING, {args.connections} connections, medians of {args.rounds}:")
    print(f"  direct        {d['rps']:>9.0f} req/s  {d['per_server_cpu_s']:>9.0f} req per server CPU-second")
    print(f"  via HAProxy   {h['rps']:>9.0f} req/s  {h['per_server_cpu_s']:>9.0f} req per server CPU-second"
          f"  HAProxy {h['haproxy_us_per_request']:.1f} us CPU per request")
    print(f"  ratio         {h['rps'] / d['rps']:.2f}x throughput, {h['per_server_cpu_s'] / d['per_server_cpu_s']:.2f}x per server core")
    e = result["haproxy"]["direct_at_haproxy_rate"]
    print(f"  direct, open loop at HAProxy's rate  {e['rps']:>9.0f} req/s  {e['per_server_cpu_s']:>9.0f} req per server "
          f"CPU-second: via HAProxy {h['per_server_cpu_s'] / e['per_server_cpu_s']:.2f}x per server core at the same load")
    r = result["redis"]
    print(f"chat line latency, {args.users} idle users per node, {args.lines} lines at 50/s:")
    for name in ("local", "remote"):
        x = r[name]
        print(f"  {name:<7} {x['lines']:>4} lines  p50 {x['p50_ms']:.2f} ms  p99 {x['p99_ms']:.2f} ms  max {x['max_ms']:.2f} ms")
    return 0


if __name__ == "__main__":
    sys.exit(main())
