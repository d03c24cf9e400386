#!/usr/bin/env python3
"""Runs the README's quick start and tour as a new user would, and the
examples of docs/PROTOCOL.md, so that the next drift between those pages
and the code fails a test.

    test_readme.py SOURCE_DIR BUILD_DIR [SANITIZER]

What it reads: the section of README.md from "## Quick start" to the next
"## " heading.  Every `make <target>` named there must be a target of the
Makefile (checked with `make -n`, nothing is run).  Every command of its
```sh and ```console blocks must be one this script knows how to run, or
the test fails; it runs them against servers of BUILD_DIR (not the Release
build the README names: `build/release/apps/` becomes BUILD_DIR/apps/),
each started afresh on a free port of 127.0.0.1 that replaces the README's
port:
  * a ```console block is a transcript: each `$ command` must print exactly
    the lines under it, against the server `make run` starts (the console
    blocks of docs/PROTOCOL.md's "## Examples" are run the same way);
  * dumb_load's line runs against the same server for 2 s (100 connections
    in sanitizer builds) and must exit 0 (no error, no timeout);
  * the chat block starts the chat server and two clients: the first must
    see the greeting the README quotes, then the line the second one types.
Every process has a time bound and is killed at the end.
"""

import os
import re
import resource
import selectors
import shlex
import signal
import subprocess
import sys
import time

SOURCE, BUILD = sys.argv[1], sys.argv[2]
SANITIZER = len(sys.argv) > 3 and sys.argv[3] != ""
SCALE = 4 if SANITIZER else 1
APPS = os.path.join(BUILD, "apps")
RELEASE_APPS = "build/release/apps/"

failures = []
processes = []


def fail(message):
    failures.append(message)
    print("FAIL " + message, flush=True)


def section(path, heading):
    text = open(os.path.join(SOURCE, path), encoding="utf-8").read()
    start = text.index("\n" + heading + "\n")
    end = text.find("\n## ", start + 1)
    return text[start:end if end >= 0 else len(text)]


def fenced_blocks(section):
    """(language, [lines]) for every fenced block."""
    return [(m.group(1), m.group(2).splitlines())
            for m in re.finditer(r"^```(\w*)\n(.*?)^```$", section, re.S | re.M)]


def strip_comment(line):
    """The command without its trailing `# ...` comment, and the comment."""
    m = re.search(r"\s+#\s(.*)$", line)
    return (line[:m.start()], m.group(1)) if m else (line, "")


def raise_fd_limit():
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def start(argv, stdin=subprocess.DEVNULL):
    p = subprocess.Popen(argv, stdin=stdin, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                         preexec_fn=raise_fd_limit, start_new_session=True)
    processes.append(p)
    return p


def read_until(p, predicate, timeout):
    """Reads p's stdout until predicate(text so far) holds or timeout passes."""
    text = b""
    sel = selectors.DefaultSelector()
    sel.register(p.stdout, selectors.EVENT_READ)
    deadline = time.monotonic() + timeout
    os.set_blocking(p.stdout.fileno(), False)
    while not predicate(text.decode(errors="replace")):
        left = deadline - time.monotonic()
        if left <= 0 or not sel.select(left):
            break
        chunk = p.stdout.read(65536)
        if not chunk:
            break
        text += chunk
    sel.close()
    return text.decode(errors="replace")


def start_server(binary):
    """Starts BUILD/apps/<binary> on a free port; returns its port."""
    p = start([os.path.join(APPS, binary), "--host", "127.0.0.1", "--port", "0"])
    out = read_until(p, lambda t: "\n" in t, 10 * SCALE)
    m = re.search(r"listening on 127\.0\.0\.1:(\d+)", out)
    if not m:
        raise RuntimeError(f"{binary} did not start: {out!r} {p.stderr.read1() if p.poll() is not None else ''}")
    return int(m.group(1))


def local(command, readme_port, port):
    """The README's command for this build and this port."""
    command = command.replace(RELEASE_APPS, APPS + "/")
    return re.sub(rf"\b{readme_port}\b", str(port), command)


def run_server_from_makefile():
    """The server and port of `make run`, from the Makefile's recipe."""
    text = open(os.path.join(SOURCE, "Makefile"), encoding="utf-8").read()
    m = re.search(r"^run:.*\n\t" + re.escape(RELEASE_APPS) + r"(\w+) .*--port (\d+)", text, re.M)
    if not m:
        raise RuntimeError("Makefile: no `run:` recipe starting build/release/apps/<server> --port <port>")
    return m.group(1), m.group(2)


def check_make_targets(section):
    targets = sorted(set(re.findall(r"\bmake ([a-z][\w-]*)", section)))
    before = len(failures)
    for target in targets:
        r = subprocess.run(["make", "-n", "-C", SOURCE, target], stdout=subprocess.DEVNULL,
                           stderr=subprocess.PIPE, text=True, timeout=60)
        if r.returncode != 0:
            fail(f"`make {target}` is not a Makefile target: {r.stderr.strip()}")
    if len(failures) == before:
        print(f"ok   make targets: {' '.join(targets)}", flush=True)


def check_transcript(lines, server, readme_port):
    port = start_server(server)
    i = 0
    while i < len(lines):
        if not lines[i].startswith("$ "):
            fail(f"transcript line without a command before it: {lines[i]!r}")
            i += 1
            continue
        command, _ = strip_comment(lines[i][2:])
        expected = []
        i += 1
        while i < len(lines) and not lines[i].startswith("$ "):
            expected.append(lines[i])
            i += 1
        if RELEASE_APPS + "line_client" not in command:
            fail(f"no test knows how to run the transcript command {command!r}")
            continue
        try:
            r = subprocess.run(["bash", "-c", local(command, readme_port, port)], capture_output=True,
                               text=True, timeout=20 * SCALE)
            got = r.stdout.splitlines()
        except subprocess.TimeoutExpired:
            got, r = ["(timed out)"], None
        if got != expected or (r and r.returncode != 0):
            fail(f"{command!r} printed {got!r} (exit {r and r.returncode}), README says {expected!r}")
        else:
            print(f"ok   {command}", flush=True)


def check_load(command, server, readme_port):
    port = start_server(server)
    argv = shlex.split(local(command, readme_port, port))
    if "--duration" in argv:
        argv[argv.index("--duration") + 1] = "2"
    if SANITIZER and "--connections" in argv:
        argv[argv.index("--connections") + 1] = "100"
    argv += ["--port", str(port)]
    try:
        r = subprocess.run(argv, capture_output=True, text=True, timeout=30 * SCALE,
                           preexec_fn=raise_fd_limit)
    except subprocess.TimeoutExpired:
        fail(f"{command!r} did not finish in time")
        return
    if r.returncode != 0:
        fail(f"{command!r} exited {r.returncode}:\n{r.stdout}{r.stderr}")
    else:
        print(f"ok   {command} (shortened to 2 s)", flush=True)


def check_chat(lines):
    """Terminal 1 starts the server, terminals 2 and 3 connect; the comments
    quote what terminal 2 sees ("..." stands for the line typed in 3)."""
    commands = [strip_comment(line) for line in lines if line.strip()]
    server = commands[0][0].split()[0]
    clients = [c for c, _ in commands[1:]]
    if not server.startswith(RELEASE_APPS) or len(clients) != 2 or not all(
            c.startswith(RELEASE_APPS + "line_client") for c in clients):
        fail(f"no test knows how to run the chat block {lines!r}")
        return
    readme_port = clients[0].split()[-1]
    quotes = re.findall(r'"([^"]*)"', " ".join(comment for _, comment in commands[1:]))
    greeting, relayed = quotes[0], quotes[1]
    port = start_server(server[len(RELEASE_APPS):])
    first = start(shlex.split(local(clients[0], readme_port, port)), stdin=subprocess.PIPE)
    seen = read_until(first, lambda t: greeting in t, 10 * SCALE)
    if greeting not in seen:
        fail(f"chat: terminal 2 saw {seen!r}, README says {greeting!r}")
        return
    second = start(shlex.split(local(clients[1], readme_port, port)), stdin=subprocess.PIPE)
    typed = "hello from terminal 3"
    read_until(second, lambda t: "\n" in t, 10 * SCALE)  # its own greeting
    second.stdin.write((typed + "\n").encode())
    second.stdin.flush()
    want = relayed.replace("...", typed)
    seen = read_until(first, lambda t: want in t, 10 * SCALE)
    if want not in seen:
        fail(f"chat: terminal 2 saw {seen!r}, README says {want!r}")
    else:
        print(f"ok   chat: {greeting!r}, then {want!r}", flush=True)


def main():
    tour = section("README.md", "## Quick start")
    check_make_targets(tour)
    server, readme_port = run_server_from_makefile()
    for language, lines in fenced_blocks(section("docs/PROTOCOL.md", "## Examples")):
        if language != "console":
            fail(f"docs/PROTOCOL.md, Examples: no test knows how to run a ```{language} block")
            continue
        check_transcript(lines, server, readme_port)
    for language, lines in fenced_blocks(tour):
        if language == "console":
            check_transcript(lines, server, readme_port)
        elif language == "sh":
            commands = [strip_comment(line)[0].strip() for line in lines if line.strip()]
            if all(c.startswith("make ") for c in commands):
                continue  # the quick start's make lines: checked as targets above
            if len(commands) == 1 and commands[0].startswith(RELEASE_APPS + "dumb_load "):
                check_load(commands[0], server, readme_port)
            elif any("chat" in c for c in commands):
                check_chat(lines)
            else:
                fail(f"no test knows how to run the block {lines!r}")
        elif language != "cmake":  # find_package is the install test's (tests/install)
            fail(f"no test knows how to run a ```{language} block: {lines!r}")
    if failures:
        print(f"{len(failures)} command(s) do not do what their page says", flush=True)
        return 1
    print("README's quick start and tour, PROTOCOL.md's examples: every command does what the page says", flush=True)
    return 0


if __name__ == "__main__":
    try:
        status = main()
    finally:
        for p in processes:
            if p.poll() is None:
                os.killpg(p.pid, signal.SIGKILL)
            p.wait()
    sys.exit(status)
