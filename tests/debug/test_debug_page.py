#!/usr/bin/env python3
"""dumb_fiber's live page under load, drawn by headless Chromium.

    test_debug_page.py BUILD_DIR

Starts dumb_fiber --debug-addr and dumb_load --debug-addr against it (127.0.0.1
only, a few seconds), loads dumb_fiber's page in headless Chromium, checks that
every chart has data, and saves a screenshot as BUILD_DIR/debug_page.png.
Also checks that both /metrics pages pass `promtool check metrics`.
"""

import random
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request


def free_port():
    """A port on 127.0.0.1 nothing listens on now, below the kernel's
    ephemeral range (32768 and up by default): a port handed out for port 0
    may go to an outgoing connection of a test running beside this one
    before the server started here binds it."""
    while True:
        port = random.randrange(20000, 32000)
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port


def wait_http(url, bound_s=20):
    deadline = time.monotonic() + bound_s
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=2) as r:
                return r.read().decode()
        except OSError:
            time.sleep(0.1)
    return None


def main():
    build = sys.argv[1]
    failures = []

    def check(ok, what):
        print(("ok   " if ok else "FAIL ") + what, flush=True)
        if not ok:
            failures.append(what)

    for tool in ("chromium", "promtool"):
        if shutil.which(tool) is None:
            print(f"FAILED: {tool} is not installed (scripts/install-deps installs it)")
            return 1
    port, debug, load_debug = free_port(), free_port(), free_port()
    server = subprocess.Popen([f"{build}/apps/dumb_fiber", "--port", str(port), "--debug-addr", f"127.0.0.1:{debug}"],
                              stdout=subprocess.DEVNULL)
    load = None
    profile = tempfile.mkdtemp(prefix="gort-chromium-")
    try:
        check(wait_http(f"http://127.0.0.1:{debug}/metrics") is not None, "dumb_fiber serves /metrics")
        load = subprocess.Popen([f"{build}/apps/dumb_load", "--port", str(port), "--connections", "50", "--duration",
                                 "15", "--cmd", "PING", "--cmd", "BURN 100", "--rate", "50",
                                 "--debug-addr", f"127.0.0.1:{load_debug}"],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(2)
        for name, p in (("dumb_fiber", debug), ("dumb_load", load_debug)):
            page = wait_http(f"http://127.0.0.1:{p}/metrics") or ""
            r = subprocess.run(["promtool", "check", "metrics"], input=page, capture_output=True, text=True)
            check(r.returncode == 0 and page != "", f"{name}'s /metrics passes promtool: {r.stdout}{r.stderr}".strip())
        check("dumb_load_requests_total" in (wait_http(f"http://127.0.0.1:{load_debug}/metrics") or ""),
              "dumb_load exports its own requests")
        flags = ["chromium", "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
                 f"--user-data-dir={profile}", "--virtual-time-budget=6000"]
        url = f"http://127.0.0.1:{debug}/"
        dom = subprocess.run(flags + ["--dump-dom", url], capture_output=True, text=True, timeout=120).stdout
        charts = re.findall(r'<svg id="svg-([a-z]+)" data-points="(\d+)"', dom)
        check(len(charts) >= 7, f"the page has its charts: {[c for c, _ in charts]}")
        check(all(int(n) >= 2 for _, n in charts), f"every chart has data: {charts}")
        check("live, " in dom, "the page heard from dumb_fiber")
        shot = f"{build}/debug_page.png"
        subprocess.run(flags + ["--window-size=1200,640", f"--screenshot={shot}", url], capture_output=True,
                       timeout=120)
        check(shutil.os.path.getsize(shot) > 10000 if shutil.os.path.exists(shot) else False, f"screenshot {shot}")
    finally:
        for p in (load, server):
            if p and p.poll() is None:
                p.terminate()
                try:
                    p.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    p.kill()
                    p.wait()
        shutil.rmtree(profile, ignore_errors=True)
    print("FAILED: " + "; ".join(failures) if failures else "PASSED")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
