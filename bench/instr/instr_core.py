#!/usr/bin/env python3
"""Instructions per switch-path operation, counted by callgrind.

Runs build/<dir>/bench/instr/gort_instr_core for each operation at two counts
under `valgrind --tool=callgrind --separate-threads=yes` and reports
(I(N2) - I(N1)) / (N2 - N1) for the worker thread alone (thread 1, the caller
of gort::run): start-up, teardown and the runtime's other threads (the
monitor) cancel out or are not counted. Instruction counts do not move with
the machine's load, so two builds can be compared in one line each.

  bench/instr/instr_core.py --build build/release [--vs build/other] [--ops yield,pingpong,spawn]
"""
import argparse
import glob
import os
import re
import subprocess
import sys
import tempfile

OPS = ("yield", "pingpong", "spawn")


def count(binary, op, n):
    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "cg.out")
        cmd = ["valgrind", "--tool=callgrind", "--separate-threads=yes",
               f"--callgrind-out-file={out}", binary, op, str(n)]
        r = subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        if r.returncode != 0:
            sys.exit(f"instr_core: {' '.join(cmd)} failed ({r.returncode}):\n{r.stderr[-2000:]}")
        files = glob.glob(out + "*-01")
        if not files:
            sys.exit(f"instr_core: callgrind wrote no dump for thread 1 ({out}-01)")
        with open(files[0]) as f:
            for line in f:
                m = re.match(r"^totals:\s+(\d+)", line) or re.match(r"^summary:\s+(\d+)", line)
                if m:
                    return int(m.group(1))
    sys.exit(f"instr_core: no totals line in the dump of {op} {n}")


def per_op(binary, op, n1, n2):
    return (count(binary, op, n2) - count(binary, op, n1)) / (n2 - n1)


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--build", required=True, help="build folder (e.g. build/release)")
    p.add_argument("--vs", help="a second build folder to compare against (its ratio is build/vs)")
    p.add_argument("--ops", default=",".join(OPS), help="comma-separated: " + ", ".join(OPS))
    p.add_argument("--n1", type=int, default=20000)
    p.add_argument("--n2", type=int, default=120000)
    a = p.parse_args()
    if a.n2 <= a.n1 or a.n1 <= 0:
        sys.exit("instr_core: need 0 < --n1 < --n2")
    builds = [a.build] + ([a.vs] if a.vs else [])
    bins = []
    for b in builds:
        path = os.path.join(os.path.abspath(b), "bench", "instr", "gort_instr_core")
        if not os.access(path, os.X_OK):
            sys.exit(f"instr_core: {path} not found (build the gort_instr_core target)")
        bins.append(path)
    ops = [o for o in a.ops.split(",") if o]
    for o in ops:
        if o not in OPS:
            sys.exit(f"instr_core: unknown operation '{o}' ({', '.join(OPS)})")
    head = f"{'operation':<10}" + "".join(f"{b:>22}" for b in builds) + ("   ratio" if a.vs else "")
    print(head)
    for o in ops:
        vals = [per_op(b, o, a.n1, a.n2) for b in bins]
        line = f"{o:<10}" + "".join(f"{v:>22.1f}" for v in vals)
        if a.vs:
            line += f"   {vals[0] / vals[1]:.3f}"
        print(line, flush=True)


if __name__ == "__main__":
    main()
