"""Tests of bench/servers/ping_floor, the floor server ab.py compares
against: it must answer PING as the DUMB servers do, close what it does not
serve instead of fixing it up, and stop on SIGTERM.  The binary comes from
$PING_FLOOR (ctest sets it)."""

import os
import re
import resource
import signal
import socket
import subprocess
import tempfile
import time
import unittest

BIN = os.environ.get("PING_FLOOR", "")
TIMEOUT = 10


def recv_exactly(sock, n):
    data = b""
    while len(data) < n:
        chunk = sock.recv(n - len(data))
        if not chunk:
            break
        data += chunk
    return data


def start(test, nofile=None, stderr=subprocess.PIPE):
    """Starts ping_floor on a free port (with RLIMIT_NOFILE at `nofile`),
    stopped and closed when `test` ends; (process, port)."""
    limit = (lambda: resource.setrlimit(resource.RLIMIT_NOFILE, (nofile, nofile))) if nofile else None
    proc = subprocess.Popen([BIN, "--port", "0"], stdout=subprocess.PIPE, stderr=stderr, text=True,
                            preexec_fn=limit)
    test.addCleanup(proc.wait, TIMEOUT)  # cleanups run last-in first-out: kill, then wait
    test.addCleanup(lambda: proc.poll() is None and proc.kill())
    test.addCleanup(proc.stdout.close)
    if proc.stderr is not None:
        test.addCleanup(proc.stderr.close)
    line = proc.stdout.readline()
    m = re.match(r"ping_floor listening on 127\.0\.0\.1:(\d+)$", line.strip())
    test.assertIsNotNone(m, f"listening line: {line!r}")
    return proc, int(m.group(1))


@unittest.skipUnless(BIN and os.path.exists(BIN), "PING_FLOOR does not name the ping_floor binary")
class PingFloor(unittest.TestCase):
    def setUp(self):
        self.proc, self.port = start(self)

    def connect(self):
        s = socket.create_connection(("127.0.0.1", self.port), timeout=TIMEOUT)
        self.addCleanup(s.close)
        return s

    def test_a_ping_split_across_reads_and_a_pipelined_one(self):
        s = self.connect()
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        s.sendall(b"PI")
        time.sleep(0.1)  # so that the server reads "PI" on its own and must hold it
        s.sendall(b"NG\nPING\n")
        self.assertEqual(recv_exactly(s, 10), b"PONG\nPONG\n")

    def test_crlf_lines(self):
        s = self.connect()
        s.sendall(b"PING\r\nPING\r")
        time.sleep(0.1)  # the CR held apart from its LF
        s.sendall(b"\n")
        self.assertEqual(recv_exactly(s, 10), b"PONG\nPONG\n")

    def test_a_burst_longer_than_one_read_is_answered_whole(self):
        s = self.connect()
        s.sendall(b"PING\n" * 2000)  # 10 000 bytes: several 2 KiB reads on one edge
        self.assertEqual(recv_exactly(s, 5 * 2000), b"PONG\n" * 2000)

    def test_many_connections_each_get_their_reply(self):
        socks = [self.connect() for _ in range(50)]
        for round_ in range(3):
            for s in socks:
                s.sendall(b"PING\n")
            for s in socks:
                self.assertEqual(recv_exactly(s, 5), b"PONG\n", f"round {round_}")

    def test_another_line_closes_the_connection_and_says_so(self):
        s = self.connect()
        s.sendall(b"PING\nPING\rX\n")
        self.assertEqual(recv_exactly(s, 5), b"PONG\n")
        self.assertEqual(s.recv(16), b"")  # closed, no reply
        ok = self.connect()  # the server goes on
        ok.sendall(b"PING\n")
        self.assertEqual(recv_exactly(ok, 5), b"PONG\n")
        self.proc.send_signal(signal.SIGTERM)
        self.assertEqual(self.proc.wait(timeout=TIMEOUT), 0)
        self.assertIn("a line other than PING", self.proc.stderr.read())

    def test_a_ping_that_comes_with_the_fin_is_answered_then_the_connection_closed(self):
        s = self.connect()
        s.sendall(b"PING\n")
        s.shutdown(socket.SHUT_WR)
        self.assertEqual(recv_exactly(s, 5), b"PONG\n")
        self.assertEqual(s.recv(16), b"")

    def test_sigterm_ends_it_with_status_0(self):
        self.proc.send_signal(signal.SIGTERM)
        self.assertEqual(self.proc.wait(timeout=TIMEOUT), 0)


def cpu_seconds(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@unittest.skipUnless(BIN and os.path.exists(BIN), "PING_FLOOR does not name the ping_floor binary")
class OutOfDescriptors(unittest.TestCase):
    """A connection that finds no descriptor must wait in the backlog,
    without the loop spinning on the readable listener, and be served once
    another connection closes; with no connection open to close, ping_floor
    says so and exits 1 instead of waiting for ever."""

    def test_accept_rests_until_a_connection_closes(self):
        # RLIMIT_NOFILE 16: 6 for stdio, the listener, the signalfd and the
        # epoll set, so the 11th connection finds no descriptor.
        # stderr to a file, not a pipe: a pipe nobody reads could fill and
        # stop the process, hiding a spin.
        err = tempfile.TemporaryFile(mode="w+")
        self.addCleanup(err.close)
        proc, port = start(self, nofile=16, stderr=err)
        socks = []
        for _ in range(12):
            s = socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT)
            self.addCleanup(s.close)
            s.sendall(b"PING\n")
            socks.append(s)
        served = socks[:10]
        for s in served:
            self.assertEqual(recv_exactly(s, 5), b"PONG\n")
        before = cpu_seconds(proc.pid)
        time.sleep(1.0)
        # A loop spinning on the listener would have used about a second.
        self.assertLess(cpu_seconds(proc.pid) - before, 0.5)
        served[0].close()
        served[1].close()
        for s in socks[10:]:
            self.assertEqual(recv_exactly(s, 5), b"PONG\n")
        proc.send_signal(signal.SIGTERM)
        self.assertEqual(proc.wait(timeout=TIMEOUT), 0)
        err.seek(0)
        self.assertIn("accepting again once a connection closes", err.read())


    def test_out_of_descriptors_with_nothing_open_exits_1(self):
        # 6 descriptors: stdio, the listener, the signalfd, the epoll set;
        # none left for a connection, and none that closing could free.
        proc, port = start(self, nofile=6)
        try:
            s = socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT)
            self.addCleanup(s.close)
        except ConnectionResetError:
            # The kernel completed the handshake, the server failed to accept
            # and exited, closing the listener, before connect() returned here.
            pass
        self.assertEqual(proc.wait(timeout=TIMEOUT), 1)
        self.assertIn("accept:", proc.stderr.read())


@unittest.skipUnless(BIN and os.path.exists(BIN), "PING_FLOOR does not name the ping_floor binary")
class Flags(unittest.TestCase):
    def run_flags(self, *flags):
        return subprocess.run([BIN, *flags], capture_output=True, text=True, timeout=TIMEOUT)

    def test_help(self):
        r = self.run_flags("--help")
        self.assertEqual(r.returncode, 0)
        self.assertIn("usage: ping_floor", r.stdout)

    def test_bad_flags_exit_2_with_a_reason(self):
        for flags, reason in ((["--port", "70000"], "--port wants"), (["--port", "x"], "--port wants"),
                              (["--host", "localhost"], "--host wants an IPv4"), (["--bogus"], "unknown")):
            with self.subTest(flags=flags):
                r = self.run_flags(*flags)
                self.assertEqual(r.returncode, 2)
                self.assertIn(reason, r.stderr)


if __name__ == "__main__":
    unittest.main()
