#!/usr/bin/env python3
"""Run gort's runtime micro-benchmarks and the Go peer; print one comparison table.

    python3 bench/run_micro.py --build build/release [--reps 5] [--quick] [--json out.json]

The C++ side is every Google Benchmark binary <build>/bench/gort_bench_*.  Its
benchmarks are named

    <name>/workers:<P>                   fiber benchmarks (yield, spawn_join, ...)
    thread_futex_pingpong/same_core      kernel-thread baselines: ns per one-way
    thread_futex_pingpong/cross_core     futex switch between two threads
    thread_create_join                   ns per pthread create + join
    fanout_<kind>_<N>/workers:<P>        fan-out (bench_fanout.cpp): ns per fiber,
                                         with counters (peak RSS, RSS per parked
                                         fiber, sleep overshoot) in their own table

Anything else is listed under "other".  The Go side is bench/peers/go, built
into <build>/bench/go_peer and run with GOMAXPROCS set to each worker count the
C++ side used.  Each number is the median over --reps repetitions.  The
fan-out cells run one repetition per process on each side, gort's and Go's
interleaved (ABBA): Go reuses an earlier repetition's goroutines within a
process, gort starts a fresh runtime for each, so only fresh processes
compare like with like.

Testing aids, not shown in --help:
    --cpp-json FILE   use a saved Google Benchmark JSON (repeatable) instead of
                      running the C++ binaries
    --go-json FILE    use saved go_peer output (JSON lines) instead of building
                      and running the Go peer
"""

import argparse
import json
import math
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
GO_PEER_SRC = HERE / "peers" / "go"

# Display order of the fiber benchmarks; names not listed here (new
# benchmarks) follow in alphabetical order rather than being dropped.
FIBER_ORDER = [
    "yield", "spawn_join", "mutex_handoff", "chan_pingpong",
    "chan_buffered_1to1", "chan_buffered_NtoN", "select_2", "select_8",
    "select_ready", "select_ready_after", "select_ready_context",
]
FUTEX_BASELINES = ["thread_futex_pingpong/same_core", "thread_futex_pingpong/cross_core"]
CREATE_BASELINE = "thread_create_join"
BASELINES = FUTEX_BASELINES + [CREATE_BASELINE]

# "<name>/workers:<P>", possibly followed by Google Benchmark's own suffixes
# such as /real_time or /min_time:0.050.
FIBER_RE = re.compile(r"^(?P<name>[^/]+)/workers:(?P<workers>\d+)(?:/.*)?$")
# Suffixes Google Benchmark appends to a name when the benchmark was
# registered with UseRealTime(), MinTime(), ...; they are not part of the
# identity we match on.
GB_SUFFIX_RE = re.compile(r"/(?:real_time|process_time|manual_time|min_time:[^/]*|"
                          r"min_warmup_time:[^/]*|iterations:\d+|repeats:\d+|threads:\d+)$")

TO_NS = {"ns": 1.0, "us": 1e3, "ms": 1e6, "s": 1e9}

# Fan-out benchmarks: fanout_<kind>_<N>; shown in their own table, by kind
# then N, with the counters both sides report.
FANOUT_RE = re.compile(r"^fanout_(?P<kind>[a-z]+)_(?P<size>\d+[kM]?)$")
FANOUT_KINDS = ["exit", "park", "sleep"]
FANOUT_COUNTERS = ["peak_rss_kib", "rss_kib_per_fiber", "pagetable_kib_per_fiber",
                   "overshoot_mean_us", "overshoot_p99_us", "overshoot_max_us"]

# Targets: (label, benchmark, maximum gort/Go ratio).
GO_TARGETS = [
    ("yield <= 0.5x Go", "yield", 0.5),
    ("spawn_join <= 0.5x Go", "spawn_join", 0.5),
    ("chan_pingpong <= 0.4x Go", "chan_pingpong", 0.4),
]
KERNEL_SWITCH_FACTOR = 100.0


def log(msg):
    print(f"run_micro: {msg}", file=sys.stderr, flush=True)


def sig3(x):
    """Format x with 3 significant figures, without exponent notation."""
    if x is None:
        return "-"
    if x == 0 or not math.isfinite(x):
        return str(x)
    decimals = 2 - math.floor(math.log10(abs(x)))
    r = round(x, decimals)
    # Rounding can add a digit (999.6 -> 1000); recompute so 1.00 is not 1.000.
    decimals = max(2 - math.floor(math.log10(abs(r))), 0)
    return f"{r:.{decimals}f}"


def ratio(a, b):
    if a is None or b is None or b == 0:
        return None
    return a / b


# --------------------------------------------------------------------------
# C++ side (Google Benchmark JSON)

def find_cpp_binaries(build):
    bench_dir = build / "bench"
    if not bench_dir.is_dir():
        return []
    return sorted(p for p in bench_dir.iterdir()
                  if p.name.startswith("gort_bench_") and p.is_file() and os.access(p, os.X_OK))


def list_benchmarks(path, only):
    """A binary's benchmarks matching `only`, as run names without Google
    Benchmark's suffixes."""
    proc = subprocess.run([str(path), "--benchmark_list_tests", f"--benchmark_filter={only}"],
                          stdout=subprocess.PIPE, text=True)
    names = []
    for line in proc.stdout.split():
        name = base_name({"name": line})
        if name not in names:
            names.append(name)
    return names


def list_fanout(path, only=None):
    """The fan-out benchmarks of a binary (fanout_<kind>_<N>/workers:<P>),
    filtered by `only`."""
    return [n for n in list_benchmarks(path, "^fanout_") if not only or re.search(only, n)]


def run_cpp_binary(path, reps, quick, only=None, exclude_fanout=False):
    cmd = [str(path), "--benchmark_format=json", f"--benchmark_repetitions={reps}",
           "--benchmark_report_aggregates_only=true"]
    if quick:
        cmd.append("--benchmark_min_time=0.05")
    if exclude_fanout and only:
        # Google Benchmark takes one filter, and a negative one cannot be
        # combined with another: name the others one by one.
        names = [n for n in list_benchmarks(path, only) if not FANOUT_RE.match(n.split("/")[0])]
        if not names:
            return {"benchmarks": []}
        cmd.append("--benchmark_filter=" + "|".join("^" + re.escape(n) + "(/|$)" for n in names))
    elif exclude_fanout:
        cmd.append("--benchmark_filter=-^fanout_")
    elif only:
        cmd.append(f"--benchmark_filter={only}")
    log("running " + " ".join(cmd))
    # stderr is left attached so the binary's own progress stays visible.
    proc = subprocess.run(cmd, stdout=subprocess.PIPE, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"{path.name} exited with status {proc.returncode}")
    return json.loads(proc.stdout)


def base_name(entry):
    name = entry.get("run_name") or entry["name"]
    if entry.get("run_type") == "aggregate" and "run_name" not in entry:
        # Old-style JSON without run_name: "<run>_median".
        agg = entry.get("aggregate_name", "")
        if agg and name.endswith("_" + agg):
            name = name[: -len(agg) - 1]
    while True:
        stripped = GB_SUFFIX_RE.sub("", name)
        if stripped == name:
            return name
        name = stripped


def median(xs):
    s = sorted(xs)
    m = len(s) // 2
    return s[m] if len(s) % 2 else (s[m - 1] + s[m]) / 2


def parse_gbench(doc, source):
    """Return {benchmark name: ns per op} from one Google Benchmark JSON.

    ns per op is 1e9 / items_per_second when the benchmark reports items
    (one item = one operation), else its real time per iteration.
    Prefers the 'median' aggregate.  With --benchmark_repetitions=1 Google
    Benchmark reports no aggregates, only the runs themselves, so a benchmark
    without a median falls back to the median of its individual runs.
    Returns (results, number of benchmarks that reported an error).
    """
    medians, runs, errors = {}, {}, 0
    for e in doc.get("benchmarks", []):
        name = base_name(e)
        if e.get("error_occurred"):
            log(f"{source}: {name}: benchmark reported an error: {e.get('error_message', '?')}")
            errors += 1
            continue
        if "real_time" not in e:
            continue  # e.g. the complexity (BigO/RMS) entries
        unit = e.get("time_unit", "ns")
        if unit not in TO_NS:
            log(f"{source}: {name}: unknown time_unit {unit!r}, skipped")
            continue
        ns = float(e["real_time"]) * TO_NS[unit]
        # A benchmark whose iteration is not one operation (two fibers
        # yielding, a round trip counted as two switches) reports
        # items_per_second with one item = one operation: that wins.
        if e.get("items_per_second"):
            ns = 1e9 / float(e["items_per_second"])
        if e.get("run_type") == "aggregate":
            if e.get("aggregate_name") == "median":
                medians[name] = ns
        else:
            runs.setdefault(name, []).append(ns)
    result = {name: median(v) for name, v in runs.items()}
    result.update(medians)
    return result, errors


def parse_gbench_counters(doc):
    """Return {benchmark name: {counter: value}} for the fan-out counters,
    from the 'median' aggregate, else the median of the individual runs."""
    medians, runs = {}, {}
    for e in doc.get("benchmarks", []):
        name = base_name(e)
        if e.get("error_occurred"):
            continue
        values = {c: float(e[c]) for c in FANOUT_COUNTERS if c in e}
        if not values:
            continue
        if e.get("run_type") == "aggregate":
            if e.get("aggregate_name") == "median":
                medians[name] = values
        else:
            for c, v in values.items():
                runs.setdefault(name, {}).setdefault(c, []).append(v)
    result = {name: {c: median(v) for c, v in cs.items()} for name, cs in runs.items()}
    result.update(medians)
    return result


def collect_cpp(args, build):
    """Return ({name: ns}, {name: {counter: value}}, raw documents, ok)."""
    results, counters, raw, ok = {}, {}, {}, True
    if args.cpp_json:
        sources = [(Path(f).name, lambda f=f: json.loads(Path(f).read_text())) for f in args.cpp_json]
    else:
        binaries = find_cpp_binaries(build)
        if not binaries:
            log(f"no gort_bench_* binaries in {build / 'bench'} (run `make build` first?)")
            return results, counters, raw, False
        sources = []
        for b in binaries:
            # The fan-out benchmarks run apart, interleaved with Go's
            # (collect_fanout).
            sources += [(b.name, lambda b=b: run_cpp_binary(b, args.reps, args.quick, args.filter,
                                                            exclude_fanout=True))]
    for source, load in sources:
        try:
            doc = load()
        except (OSError, RuntimeError, json.JSONDecodeError) as e:
            log(f"{source}: {e}")
            ok = False
            continue
        raw[source] = doc
        for name, cs in parse_gbench_counters(doc).items():
            counters.setdefault(name, cs)
        parsed, errors = parse_gbench(doc, source)
        ok = ok and errors == 0
        for name, ns in parsed.items():
            if name in results:
                log(f"{source}: duplicate benchmark {name}, keeping the first")
                continue
            results[name] = ns
    return results, counters, raw, ok


# --------------------------------------------------------------------------
# Go side

def go_env(build):
    # Keep every Go write (build cache, module cache) under the build tree so
    # that `make bench` touches nothing in $HOME and never reaches a network.
    cache = build / "go-cache"
    env = dict(os.environ)
    env.update(GOCACHE=str(cache / "cache"), GOPATH=str(cache / "gopath"),
               GOFLAGS="-mod=mod", GOPROXY="off")
    return env


def build_go_peer(go, build):
    out = build / "bench" / "go_peer"
    out.parent.mkdir(parents=True, exist_ok=True)
    cmd = [go, "build", "-o", str(out), "./"]
    log(f"building Go peer: (cd {GO_PEER_SRC} && {' '.join(cmd)})")
    subprocess.run(cmd, cwd=GO_PEER_SRC, env=go_env(build), check=True)
    return out


def parse_json_lines(lines):
    for line in lines:
        try:
            yield json.loads(line)
        except ValueError:
            pass


def parse_go_lines(text, source, counters=None):
    """Return {(name, procs): ns per op}; the fan-out counters of each line go
    to `counters` ({(name, procs): {counter: value}}) when given."""
    results = {}
    for line in text.splitlines():
        line = line.strip()
        if not line:
            continue
        try:
            r = json.loads(line)
            key = (r["name"], int(r["procs"]))
            results[key] = float(r["ns_per_op"])
            if counters is not None:
                values = {c: float(r[c]) for c in FANOUT_COUNTERS if c in r}
                if values:
                    counters[key] = values
        except (ValueError, KeyError, TypeError):
            log(f"{source}: ignoring unexpected line: {line[:80]}")
    return results


_go_peers = {}  # build directory -> the Go peer built there this run (or None)


def find_go_peer(args, build):
    """The Go peer's binary, built once per run; None without `go` or with
    --no-go. Raises OSError / CalledProcessError if the build fails."""
    if args.no_go:
        return None
    if build not in _go_peers:
        go = shutil.which("go")
        if go is None:
            log("`go` not found: no Go column (scripts/install-deps --bench installs golang-go)")
            _go_peers[build] = None
        else:
            _go_peers[build] = build_go_peer(go, build)
    return _go_peers[build]


def collect_go(args, build, procs, counters):
    """Return ({(name, procs): ns}, raw lines, ok); fills `counters`. The
    fan-out benchmarks are left to collect_fanout, except from --go-json.
    Missing `go` is not an error."""
    if args.go_json:
        text = Path(args.go_json).read_text()
        return parse_go_lines(text, args.go_json, counters), text.splitlines(), True
    try:
        peer = find_go_peer(args, build)
        if peer is None:
            return {}, [], True
        cmd = [str(peer), "-reps", str(args.reps), "-skip", "^fanout_"]
        if args.quick:
            cmd += ["-benchtime", "50ms"]  # matches --benchmark_min_time=0.05
        if args.filter:
            cmd += ["-only", args.filter]
        if procs:
            cmd += ["-procs", ",".join(str(p) for p in procs)]
        log("running " + " ".join(cmd))
        text = subprocess.run(cmd, stdout=subprocess.PIPE, text=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError) as e:
        log(f"Go peer failed: {e}")
        return {}, [], False
    return parse_go_lines(text, "go_peer", counters), text.splitlines(), True


# --------------------------------------------------------------------------
# Fan-out: both sides, interleaved

def collect_fanout(args, build):
    """Runs every fan-out cell (name, workers) of the C++ binaries and the
    same cell of the Go peer, one repetition per process on each side, in
    ABBA order over the repetitions (gort, Go; Go, gort; ...), so that both
    sides are as cold in every repetition (a fresh process: Go reuses the
    goroutines of an earlier repetition, gort starts a fresh runtime in each)
    and drift on a noisy machine falls on both alike. Returns
    (cpp {(name, workers): ns}, cpp counters, go {(name, procs): ns},
    go counters, raw {source: document or lines}, ok)."""
    cpp, cpp_counters, go, go_counters, raw, ok = {}, {}, {}, {}, {}, True
    binaries = find_cpp_binaries(build)
    try:
        peer = find_go_peer(args, build)
    except (OSError, subprocess.CalledProcessError) as e:
        log(f"Go peer failed: {e}")
        peer, ok = None, False
    cells = [(b, n) for b in binaries for n in list_fanout(b, args.filter)]
    for index, (binary, full) in enumerate(cells):
        m = FIBER_RE.match(full)
        if not m:
            continue
        name, workers = m.group("name"), int(m.group("workers"))
        log(f"fan-out {index + 1}/{len(cells)}: {full}, {args.reps} rep(s) on each side")
        samples = {"gort": [], "go": []}  # (ns, counters) per repetition

        def run_gort():
            doc = run_cpp_binary(binary, 1, args.quick, "^" + re.escape(full) + "/")
            raw.setdefault(f"{binary.name} {full}", []).append(doc)
            parsed, errors = parse_gbench(doc, binary.name)
            if errors or full not in parsed:
                raise RuntimeError(f"{full}: no result")
            samples["gort"].append((parsed[full], parse_gbench_counters(doc).get(full, {})))

        def run_go():
            if peer is None:
                return
            cmd = [str(peer), "-reps", "1", "-only", f"^{name}$", "-procs", str(workers)]
            if args.quick:
                cmd += ["-benchtime", "50ms"]
            log("running " + " ".join(cmd))
            text = subprocess.run(cmd, stdout=subprocess.PIPE, text=True, check=True).stdout
            raw.setdefault(f"go_peer {name} procs={workers}", []).extend(text.splitlines())
            counters = {}
            parsed = parse_go_lines(text, "go_peer", counters)
            if (name, workers) not in parsed:
                raise RuntimeError(f"go_peer {name} procs={workers}: no result")
            samples["go"].append((parsed[(name, workers)], counters.get((name, workers), {})))

        try:
            for rep in range(args.reps):
                for run in ((run_gort, run_go) if rep % 2 == 0 else (run_go, run_gort)):
                    run()
        except (OSError, RuntimeError, subprocess.CalledProcessError, json.JSONDecodeError) as e:
            log(f"{full}: {e}")
            ok = False
        # Keys as build_fanout_rows looks them up.
        for side, results, counters, counters_key in (("gort", cpp, cpp_counters, full), ("go", go, go_counters, (name, workers))):
            got = samples[side]
            if not got:
                continue
            results[(name, workers)] = median([ns for ns, _ in got])
            fields = {c for _, cs in got for c in cs}
            counters[counters_key] = {c: median([cs[c] for _, cs in got if c in cs]) for c in fields}
    return cpp, cpp_counters, go, go_counters, raw, ok


# --------------------------------------------------------------------------
# Table

def split_fanout(results):
    """Moves the fan-out entries of {(name, workers): x} into a dict of their own."""
    fanout = {k: v for k, v in results.items() if FANOUT_RE.match(k[0])}
    for k in fanout:
        del results[k]
    return fanout


def classify(cpp):
    fiber, baselines, other = {}, {}, {}
    for name, ns in cpp.items():
        m = FIBER_RE.match(name)
        if m:
            fiber[(m["name"], int(m["workers"]))] = ns
        elif name in BASELINES:
            baselines[name] = ns
        else:
            other[name] = ns
    return fiber, baselines, other


def order_key(key):
    name, workers = key
    rank = FIBER_ORDER.index(name) if name in FIBER_ORDER else len(FIBER_ORDER)
    return (rank, name, workers)


def build_rows(fiber, go, baselines):
    rows = []
    for key in sorted(set(fiber) | set(go), key=order_key):
        name, workers = key
        g, o = fiber.get(key), go.get(key)
        row = {"benchmark": name, "workers": workers, "gort_ns": g, "go_ns": o,
               "gort_over_go": ratio(g, o), "kernel": []}
        # A yield is a fiber switch; the kernel-thread equivalent is a futex
        # handoff between two threads.  Spawning compares with pthread
        # create+join.  The ratio reads "how many times cheaper is gort".
        if g is None:
            pass
        elif name == "yield":
            for b in FUTEX_BASELINES:
                if b in baselines:
                    row["kernel"].append({"baseline": b, "ns": baselines[b],
                                          "thread_over_gort": ratio(baselines[b], g)})
        elif name == "spawn_join" and CREATE_BASELINE in baselines:
            b = CREATE_BASELINE
            row["kernel"].append({"baseline": b, "ns": baselines[b],
                                  "thread_over_gort": ratio(baselines[b], g)})
        rows.append(row)
    return rows


def evaluate_targets(rows):
    targets = []
    for label, bench, limit in GO_TARGETS:
        for r in rows:
            if r["benchmark"] == bench and r["gort_over_go"] is not None:
                targets.append({
                    "target": label, "workers": r["workers"], "value": r["gort_over_go"],
                    "holds": r["gort_over_go"] <= limit,
                    "detail": f"gort/Go = {sig3(r['gort_over_go'])}"})
    for r in rows:
        if r["benchmark"] != "yield":
            continue
        for k in r["kernel"]:
            if k["thread_over_gort"] is None:
                continue
            targets.append({
                "target": f"kernel futex switch >= {KERNEL_SWITCH_FACTOR:g}x fiber yield",
                "workers": r["workers"], "value": k["thread_over_gort"],
                "holds": k["thread_over_gort"] >= KERNEL_SWITCH_FACTOR,
                "detail": f"{k['baseline'].split('/')[-1]}: {sig3(k['thread_over_gort'])}x"})
    return targets


def render_table(headers, rows, align):
    widths = [max(len(h), *(len(r[i]) for r in rows)) if rows else len(h)
              for i, h in enumerate(headers)]

    def fmt(cells):
        out = [c.rjust(w) if a == ">" else c.ljust(w) for c, w, a in zip(cells, widths, align)]
        return "  ".join(out).rstrip()

    lines = [fmt(headers), "  ".join("-" * w for w in widths)]
    lines += [fmt(r) for r in rows]
    return "\n".join(lines)


def print_report(rows, baselines, other, targets, have_go, out):
    headers = ["benchmark", "workers", "gort ns/op"]
    align = ["<", ">", ">"]
    if have_go:
        headers += ["Go ns/op", "gort/Go"]
        align += [">", ">"]
    headers += ["kernel-thread baseline", "thread ns/op", "thread/gort"]
    align += ["<", ">", "<"]

    cells = []
    for r in rows:
        line = [r["benchmark"], str(r["workers"]), sig3(r["gort_ns"])]
        if have_go:
            line += [sig3(r["go_ns"]), sig3(r["gort_over_go"])]
        kernel = r["kernel"] or [None]
        for i, k in enumerate(kernel):
            if i > 0:  # further baselines for the same row go on their own line
                line = ["", "", ""] + (["", ""] if have_go else [])
            if k is None:
                line += ["", "", ""]
            else:
                what = "kernel switch / fiber yield" if r["benchmark"] == "yield" else "thread / fiber"
                tog = k["thread_over_gort"]
                line += [k["baseline"], sig3(k["ns"]), f"{what} = {sig3(tog)}x" if tog else "-"]
            cells.append(line)

    print("gort runtime micro-benchmarks: median ns/op (lower is better)", file=out)
    print(file=out)
    if cells:
        print(render_table(headers, cells, align), file=out)
    else:
        print("(no fiber benchmark results)", file=out)

    if baselines:
        print(file=out)
        print(render_table(["kernel-thread baseline", "ns/op"],
                           [[n, sig3(baselines[n])] for n in BASELINES if n in baselines],
                           ["<", ">"]), file=out)
    if other:
        print(file=out)
        print("other", file=out)
        print(render_table(["benchmark", "ns/op"], [[n, sig3(v)] for n, v in sorted(other.items())],
                           ["<", ">"]), file=out)
    if targets:
        print(file=out)
        print("targets", file=out)
        print(render_table(
            ["target", "workers", "measured", "status"],
            [[t["target"], str(t["workers"]), t["detail"], "holds" if t["holds"] else "MISSED"]
             for t in targets],
            ["<", ">", "<", "<"]), file=out)


def size_value(label):
    return int(label[:-1]) * {"k": 1000, "M": 1000000}[label[-1]] if label[-1] in "kM" else int(label)


def fanout_key(key):
    m = FANOUT_RE.match(key[0])
    kind = FANOUT_KINDS.index(m["kind"]) if m["kind"] in FANOUT_KINDS else len(FANOUT_KINDS)
    return (kind, m["kind"], size_value(m["size"]), key[1])


def build_fanout_rows(cpp, go, cpp_counters, go_counters):
    rows = []
    for key in sorted(set(cpp) | set(go), key=fanout_key):
        name, workers = key
        g, o = cpp.get(key), go.get(key)
        rows.append({"benchmark": name, "workers": workers, "gort_ns": g, "go_ns": o,
                     "gort_over_go": ratio(g, o),
                     "gort": cpp_counters.get(f"{name}/workers:{workers}", {}),
                     "go": go_counters.get(key, {})})
    return rows


def print_fanout(rows, have_go, out):
    def pair(r, counter, scale=1.0):
        a, b = r["gort"].get(counter), r["go"].get(counter)
        a = sig3(a * scale) if a is not None else "-"
        if not have_go:
            return a
        # The Go peer leaves out a counter that came out zero.
        return f"{a} | {sig3(b * scale) if b is not None else '0'}"

    headers = ["benchmark", "workers", "gort ns/fiber"]
    align = ["<", ">", ">"]
    if have_go:
        headers += ["Go ns/fiber", "gort/Go"]
        align += [">", ">"]
    who = " (gort | Go)" if have_go else ""
    headers += ["peak RSS MiB" + who, "KiB/parked fiber" + who, "page tables KiB/fiber" + who,
                "overshoot mean/p99/max ms" + who]
    align += [">", ">", ">", ">"]
    cells = []
    for r in rows:
        line = [r["benchmark"], str(r["workers"]), sig3(r["gort_ns"])]
        if have_go:
            line += [sig3(r["go_ns"]), sig3(r["gort_over_go"])]
        over = ""
        if "overshoot_mean_us" in r["gort"] or "overshoot_mean_us" in r["go"]:
            def three(side):
                c = r[side]
                return "/".join(sig3(c[k] / 1000) if k in c else "-"
                                for k in ("overshoot_mean_us", "overshoot_p99_us", "overshoot_max_us"))
            over = three("gort") + (" | " + three("go") if have_go else "")
        parked = "rss_kib_per_fiber" in r["gort"]
        line += [pair(r, "peak_rss_kib", 1 / 1024),
                 pair(r, "rss_kib_per_fiber") if parked else "",
                 pair(r, "pagetable_kib_per_fiber") if parked else "", over]
        cells.append(line)
    print(file=out)
    print("fan-out: one fiber spawns N, then waits for all (bench_fanout.cpp); median of the reps,"
          " each in a process of its own, gort and Go in ABBA order",
          file=out)
    print(render_table(headers, cells, align), file=out)


# --------------------------------------------------------------------------

def parse_args(argv):
    p = argparse.ArgumentParser(
        description="Run gort's runtime micro-benchmarks (<build>/bench/gort_bench_*) and the Go "
                    "peer (bench/peers/go), and print one comparison table.")
    p.add_argument("--build", required=True, type=Path, help="CMake build directory, e.g. build/release")
    p.add_argument("--reps", type=int, default=5, help="repetitions per benchmark, median reported (default 5)")
    p.add_argument("--quick", action="store_true",
                   help="one short repetition each (reps=1, --benchmark_min_time=0.05, Go -reps 1)")
    p.add_argument("--json", type=Path, metavar="OUT", help="also write all raw numbers to OUT")
    p.add_argument("--no-go", action="store_true", help="skip the Go peer")
    p.add_argument("--filter", metavar="REGEXP",
                   help="run only the benchmarks whose name matches (both sides), e.g. '^fanout_exit'")
    # Testing aids: reuse saved results instead of running the benchmarks.
    p.add_argument("--cpp-json", action="append", metavar="FILE", help=argparse.SUPPRESS)
    p.add_argument("--go-json", metavar="FILE", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.quick:
        args.reps = 1
    if args.reps < 1:
        p.error("--reps must be >= 1")
    return args


def main(argv=None):
    args = parse_args(argv)
    build = args.build.resolve()

    cpp, cpp_counters, cpp_raw, cpp_ok = collect_cpp(args, build)
    fiber, baselines, other = classify(cpp)
    # Run Go at exactly the worker counts the C++ side used; with no C++
    # results the peer's own default (1 and NumCPU) is used.
    cpp_fanout = split_fanout(fiber)  # from --cpp-json only: live runs are collect_fanout's
    procs = sorted({w for _, w in fiber})
    go_counters = {}
    go, go_raw, go_ok = collect_go(args, build, procs, go_counters)
    go_fanout = split_fanout(go)
    fanout_ok = True
    if not args.cpp_json:
        f_cpp, f_cpp_counters, f_go, f_go_counters, f_raw, fanout_ok = collect_fanout(args, build)
        cpp_fanout.update(f_cpp)
        cpp_counters.update(f_cpp_counters)
        go_fanout.update(f_go)
        go_counters.update(f_go_counters)
        cpp_raw.update({k: v for k, v in f_raw.items() if not k.startswith("go_peer ")})
        go_raw += [line for k, v in f_raw.items() if k.startswith("go_peer ") for line in v]
    have_go = bool(go) or bool(go_fanout)
    fanout_rows = build_fanout_rows(cpp_fanout, go_fanout, cpp_counters, go_counters)

    rows = build_rows(fiber, go, baselines)
    targets = evaluate_targets(rows)
    print_report(rows, baselines, other, targets, have_go, sys.stdout)
    if fanout_rows:
        print_fanout(fanout_rows, have_go, sys.stdout)

    if args.json:
        report = {
            "config": {"build": str(build), "reps": args.reps, "quick": args.quick},
            "rows": rows,
            "fanout": fanout_rows,
            "kernel_baselines": baselines,
            "other": other,
            "targets": targets,
            "raw": {"gort": cpp_raw, "go": list(parse_json_lines(go_raw))},
        }
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(report, indent=2) + "\n")
        log(f"wrote {args.json}")

    # Missing `go` is tolerated; a benchmark that failed to build or run is not.
    return 0 if cpp_ok and go_ok and fanout_ok else 1


if __name__ == "__main__":
    sys.exit(main())
