#!/usr/bin/env python3
"""Every program the project builds answers --help and refuses a bad argument.

For each binary given: `--help` exits 0 within a few seconds and prints a
line starting "usage:" on stdout; an unknown flag exits 2 within a few
seconds and says something on stderr (and starts nothing: no server is
left running, no load is sent).
"""
import subprocess
import sys

TIMEOUT = 20


def check(binary):
    problems = []
    try:
        h = subprocess.run([binary, "--help"], capture_output=True, text=True, timeout=TIMEOUT)
    except subprocess.TimeoutExpired:
        return [f"{binary} --help: still running after {TIMEOUT} s"]
    if h.returncode != 0:
        problems.append(f"{binary} --help: exit {h.returncode}, want 0")
    if not any(line.startswith("usage:") for line in h.stdout.splitlines()):
        problems.append(f"{binary} --help: no 'usage:' line on stdout (stdout {h.stdout[:80]!r})")
    try:
        b = subprocess.run([binary, "--no-such-flag"], capture_output=True, text=True, timeout=TIMEOUT)
    except subprocess.TimeoutExpired:
        return problems + [f"{binary} --no-such-flag: still running after {TIMEOUT} s"]
    if b.returncode != 2:
        problems.append(f"{binary} --no-such-flag: exit {b.returncode}, want 2")
    if not b.stderr.strip():
        problems.append(f"{binary} --no-such-flag: nothing on stderr")
    return problems


def main():
    # A program the build leaves out (the benchmark tools under a sanitizer)
    # comes as an empty argument.
    binaries = [b for b in sys.argv[1:] if b]
    if not binaries:
        sys.exit("usage: test_help.py BINARY...")
    problems = [p for b in binaries for p in check(b)]
    for p in problems:
        print(p)
    print(f"{len(binaries)} programs checked, {len(problems)} problems")
    sys.exit(1 if problems else 0)


if __name__ == "__main__":
    main()
