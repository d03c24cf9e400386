#!/usr/bin/env python3
"""Scale-out across hosts, on one machine: hosts are network namespaces
joined by veth pairs to a bridge in a namespace of their own (the switch),
so nothing of the machine's own network changes.

    test_scaleout.py BUILD_DIR PROJECT_DIR

    h1 10.77.0.1   HAProxy (deploy/haproxy/dumb.cfg), dumb_load, Redis
    h2 10.77.0.2   dumb_fiber, chat_fiber --redis 10.77.0.1:6379
    h3 10.77.0.3   dumb_fiber, chat_fiber --redis 10.77.0.1:6379

Checks, DUMB: dumb_load through HAProxy sees no error and HAProxy spread
the connections over both dumb_fiber hosts; once one host stops, HAProxy
takes it out and the load goes on without an error on the other.
Chat: a line said by a user on h2 reaches a user on h3; user numbers are
unique across the nodes; with Redis stopped, users of one node still chat
and the nodes say they lost Redis; once Redis is back, lines cross again;
with h3 stopped, h2's users still chat.

Needs root (ip netns), as CI runs; without it the test says so and is
skipped (exit 77).  Every process it starts runs inside a namespace it
made, every step is bounded in time, and the namespaces are deleted on the
way out, also when a check fails or the test is interrupted (and those of
an earlier run that was killed, found by their names, on the way in).
"""

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

SKIP = 77
SUBNET = "10.77.0"
PREFIX = "gortmh"


def sh(*args, check=True, **kw):
    return subprocess.run(list(args), check=check, capture_output=True, text=True, **kw)


class Hosts:
    """n hosts on one bridge; hosts[i] is the namespace of 10.77.0.(i+1)."""

    def __init__(self, n):
        self.tag = f"{PREFIX}{os.getpid()}"
        self.switch = f"{self.tag}-sw"
        self.hosts = [f"{self.tag}-h{i + 1}" for i in range(n)]
        self.procs = []

    @staticmethod
    def remove_stale():
        for line in sh("ip", "netns", "list").stdout.splitlines():
            m = re.match(rf"({PREFIX}(\d+)-\w+)", line)
            if m and not os.path.exists(f"/proc/{m.group(2)}"):
                sh("ip", "netns", "del", m.group(1), check=False)

    def __enter__(self):
        self.remove_stale()
        try:
            sh("ip", "netns", "add", self.switch)
            self.exec(self.switch, "ip", "link", "add", "br0", "type", "bridge")
            self.exec(self.switch, "ip", "link", "set", "br0", "up")
            for i, host in enumerate(self.hosts):
                sh("ip", "netns", "add", host)
                sh("ip", "link", "add", "eth0", "netns", host, "type", "veth", "peer", "name", f"port{i + 1}",
                   "netns", self.switch)
                self.exec(self.switch, "ip", "link", "set", f"port{i + 1}", "master", "br0")
                self.exec(self.switch, "ip", "link", "set", f"port{i + 1}", "up")
                self.exec(host, "ip", "addr", "add", f"{SUBNET}.{i + 1}/24", "dev", "eth0")
                self.exec(host, "ip", "link", "set", "eth0", "up")
                self.exec(host, "ip", "link", "set", "lo", "up")
        except BaseException:
            self.__exit__()
            raise
        return self

    def __exit__(self, *exc):
        for p in self.procs:
            if p.poll() is None:
                p.kill()
                p.wait()
        for ns in self.hosts + [self.switch]:
            sh("ip", "netns", "del", ns, check=False)

    def exec(self, ns, *cmd, **kw):
        return sh("ip", "netns", "exec", ns, *cmd, **kw)

    def start(self, ns, *cmd, env=None):
        # stderr passes through (ctest keeps it); stdout is read for readiness
        p = subprocess.Popen(["ip", "netns", "exec", ns, *cmd], stdout=subprocess.PIPE, env=env)
        self.procs.append(p)
        return p


def wait_for_line(proc, pattern, bound_s):
    """The first stdout line of proc matching pattern, within bound_s."""
    deadline = time.monotonic() + bound_s
    fd = proc.stdout.fileno()
    os.set_blocking(fd, False)
    seen = ""
    while time.monotonic() < deadline:
        try:
            chunk = os.read(fd, 4096).decode(errors="replace")
        except BlockingIOError:
            chunk = ""
        if chunk:
            seen += chunk
            if re.search(pattern, seen):
                return True
        elif proc.poll() is not None:
            break
        time.sleep(0.05)
    return False


def haproxy_sessions(stats_path):
    """Total sessions per backend server, from HAProxy's stats socket."""
    with socket.socket(socket.AF_UNIX) as s:
        s.settimeout(5)
        s.connect(stats_path)
        s.sendall(b"show stat\n")
        data = b""
        while chunk := s.recv(65536):
            data += chunk
    lines = data.decode().splitlines()
    header = lines[0].lstrip("# ").split(",")
    out = {}
    for line in lines[1:]:
        row = dict(zip(header, line.split(",")))
        if row.get("pxname") == "dumb_hosts" and row.get("svname", "").startswith("host"):
            out[row["svname"]] = (int(row["stot"] or 0), row["status"])
    return out


def dumb_load(hosts, ns, build, port, seconds, connections):
    r = hosts.exec(ns, f"{build}/apps/dumb_load", "--host", "127.0.0.1", "--port", str(port), "--closed-loop",
                   "--cmd", "PING", "--connections", str(connections), "--duration", str(seconds), "--timeout", "5s",
                   "--json", check=False, timeout=seconds + 60)
    try:
        return json.loads(r.stdout)
    except json.JSONDecodeError:
        return {"error": f"no JSON from dumb_load (exit {r.returncode}): {r.stderr[-500:]}"}


def chat_client(port, say, listen_s):
    """--chat-client: run inside a host; prints every line received."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as c:
        c.settimeout(0.1)
        deadline, sent, buf = time.monotonic() + listen_s, False, b""
        while time.monotonic() < deadline:
            try:
                chunk = c.recv(4096)
                if not chunk:
                    break
                buf += chunk
                *lines, buf = buf.split(b"\n")
                for line in lines:
                    print(line.decode(errors="replace"), flush=True)
            except socket.timeout:
                pass
            if not sent and b"" == buf and say is not None:
                for line in say:
                    c.sendall(line.encode() + b"\n")
                sent = True


class ChatUser:
    """A chat client in a host: says `say` once welcomed, prints what it hears."""

    def __init__(self, hosts, ns, say=(), listen_s=30):
        self.proc = hosts.start(ns, sys.executable, __file__, "--chat-client", "8091", str(listen_s), *say)
        self.seen = ""

    def wait_for(self, pattern, bound_s=10):
        fd = self.proc.stdout.fileno()
        os.set_blocking(fd, False)
        deadline = time.monotonic() + bound_s
        while time.monotonic() < deadline:
            m = re.search(pattern, self.seen)
            if m:
                return m
            try:
                chunk = os.read(fd, 4096).decode(errors="replace")
            except BlockingIOError:
                chunk = ""
            if chunk:
                self.seen += chunk
            elif self.proc.poll() is not None:
                break
            else:
                time.sleep(0.02)
        return re.search(pattern, self.seen)

    def stop(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


def chat_checks(hosts, build, check, stderr_dir):
    h1, h2, h3 = hosts.hosts
    redis_cmd = ["redis-server", "--bind", "0.0.0.0", "--port", "6379", "--protected-mode", "no", "--save", "",
                 "--appendonly", "no"]
    redis = hosts.start(h1, *redis_cmd)
    check(wait_for_line(redis, r"Ready to accept connections", 20), "Redis runs in h1")
    logs, nodes = {}, {}
    for ns in (h2, h3):
        logs[ns] = open(f"{stderr_dir}/{ns}-chat.err", "w+")
        nodes[ns] = subprocess.Popen(["ip", "netns", "exec", ns, f"{build}/apps/chat_fiber", "--host", "0.0.0.0",
                                      "--port", "8091", "--redis", f"{SUBNET}.1:6379"],
                                     stdout=subprocess.PIPE, stderr=logs[ns])
        hosts.procs.append(nodes[ns])
        check(wait_for_line(nodes[ns], r"listening on", 30), f"chat_fiber listens in {ns}")

    def crosses(line, bound_s=20):
        """A user on h3 hears `line` said on h2 (said again until heard: the
        nodes may still be reconnecting)."""
        hearer = ChatUser(hosts, h3, listen_s=bound_s + 5)
        try:
            if not hearer.wait_for(r"Welcome chat user no\. \d+"):
                return False
            deadline = time.monotonic() + bound_s
            while time.monotonic() < deadline:
                speaker = ChatUser(hosts, h2, say=[line], listen_s=1)
                speaker.wait_for(r"Welcome", 5)
                if hearer.wait_for(re.escape("]: " + line), 2):
                    return True
                speaker.stop()
            return False
        finally:
            hearer.stop()

    def chats_within(ns, line):
        """A user on ns hears `line` said by another user on ns."""
        hearer = ChatUser(hosts, ns, listen_s=10)
        speaker = None
        try:
            hearer.wait_for(r"Welcome")
            speaker = ChatUser(hosts, ns, say=[line], listen_s=2)
            return bool(hearer.wait_for(re.escape("]: " + line)))
        finally:
            hearer.stop()
            if speaker:
                speaker.stop()

    check(crosses("hello from h2"), "a line said on h2 reaches a user on h3 through Redis")
    users = [ChatUser(hosts, ns, listen_s=5) for ns in (h2, h3, h2, h3)]
    numbers = [u.wait_for(r"Welcome chat user no\. (\d+)") for u in users]
    numbers = [int(m.group(1)) for m in numbers if m]
    check(len(numbers) == 4 and len(set(numbers)) == 4, f"user numbers unique across nodes: {numbers}")
    for u in users:
        u.stop()

    redis.kill()
    redis.wait()
    check(chats_within(h2, "local while redis is down"), "with Redis down, users of one node still chat")
    deadline, said = time.monotonic() + 15, ""
    while time.monotonic() < deadline and "lost redis" not in said:
        logs[h2].seek(0)
        said = logs[h2].read()
        time.sleep(0.1)
    check("lost redis" in said, f"the node says it lost Redis: {said.strip()[-200:]!r}")
    redis = hosts.start(h1, *redis_cmd)
    check(wait_for_line(redis, r"Ready to accept connections", 20), "Redis restarted")
    check(crosses("after the restart", bound_s=30), "once Redis is back, lines cross again")

    nodes[h3].send_signal(signal.SIGTERM)
    nodes[h3].wait(timeout=30)
    check(chats_within(h2, "h3 is gone"), "with h3 stopped, users of h2 still chat")
    for f in logs.values():
        f.close()


def main():
    if len(sys.argv) >= 4 and sys.argv[1] == "--chat-client":
        chat_client(int(sys.argv[2]), sys.argv[4:], float(sys.argv[3]))
        return 0
    if len(sys.argv) != 3:
        print(__doc__)
        return 2
    build, project = sys.argv[1], sys.argv[2]
    if os.geteuid() != 0:
        print("SKIP: needs root for ip netns (CI runs as root)")
        return SKIP
    for tool in ("ip", "haproxy", "redis-server"):
        if shutil.which(tool) is None:
            print(f"FAILED: {tool} is not installed (scripts/install-deps installs it)")
            return 1
    failures = []

    def check(ok, what):
        print(("ok   " if ok else "FAIL ") + what, flush=True)
        if not ok:
            failures.append(what)

    signal.signal(signal.SIGTERM, lambda *_: sys.exit(1))  # unwinds through Hosts.__exit__
    with Hosts(3) as hosts:
        h1, h2, h3 = hosts.hosts
        servers = []
        for ns in (h2, h3):
            p = hosts.start(ns, f"{build}/apps/dumb_fiber", "--host", "0.0.0.0", "--port", "8090")
            check(wait_for_line(p, r"listening on", 30), f"dumb_fiber listens in {ns}")
            servers.append(p)
        stats = f"/tmp/{hosts.tag}-haproxy.sock"
        env = dict(os.environ, DUMB_LISTEN="127.0.0.1:8080", DUMB_BACKEND_1=f"{SUBNET}.2:8090",
                   DUMB_BACKEND_2=f"{SUBNET}.3:8090", HAPROXY_STATS=stats)
        haproxy = hosts.start(h1, "haproxy", "-db", "-f", f"{project}/deploy/haproxy/dumb.cfg", env=env)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and not os.path.exists(stats) and haproxy.poll() is None:
            time.sleep(0.05)
        check(os.path.exists(stats), "HAProxy runs in h1")
        if failures:
            return 1
        try:
            result = dumb_load(hosts, h1, build, 8080, seconds=3, connections=100)
            check("error" not in result, f"dumb_load through HAProxy: {result.get('error', 'ran')}")
            check(result.get("ok", 0) > 0, f"requests answered through HAProxy: {result.get('ok')}")
            check(result.get("errors") == 0 and result.get("timeouts") == 0 and result.get("connect_failures") == 0,
                  f"no error, timeout or failed connect: {result.get('errors')}, {result.get('timeouts')}, "
                  f"{result.get('connect_failures')}")
            sessions = haproxy_sessions(stats)
            check(len(sessions) == 2 and all(n > 0 for n, _ in sessions.values()),
                  f"connections spread over both hosts: {sessions}")

            servers[1].send_signal(signal.SIGTERM)  # h3 goes away
            servers[1].wait(timeout=30)
            down = False
            deadline = time.monotonic() + 20
            while time.monotonic() < deadline and not down:
                down = haproxy_sessions(stats).get("host2", (0, ""))[1].startswith("DOWN")
                time.sleep(0.2)
            check(down, "HAProxy takes the stopped host out")
            before = haproxy_sessions(stats)["host1"][0]
            result = dumb_load(hosts, h1, build, 8080, seconds=2, connections=50)
            check(result.get("ok", 0) > 0 and result.get("errors") == 0 and result.get("connect_failures") == 0,
                  f"the load goes on with one host, without an error: ok {result.get('ok')}, "
                  f"errors {result.get('errors')}, failed connects {result.get('connect_failures')}")
            check(haproxy_sessions(stats)["host1"][0] > before, "the remaining host took the connections")
            chat_checks(hosts, build, check, tempfile.mkdtemp(prefix=hosts.tag))
        finally:
            if os.path.exists(stats):
                os.unlink(stats)
    print("FAILED: " + "; ".join(failures) if failures else "PASSED")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
