"""/proc sampling of a process tree for bench/servers/run.py: CPU time, memory,
threads, context switches, summed over a process and its descendants (so a
pre-forking server counts with its workers)."""

import os
import signal

CLK_TCK = os.sysconf("SC_CLK_TCK")


def process_tree(pid):
    """pid and its descendants that are alive."""
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        try:
            for task in os.listdir(f"/proc/{p}/task"):
                try:
                    with open(f"/proc/{p}/task/{task}/children") as f:
                        todo.extend(int(c) for c in f.read().split())
                except OSError:
                    pass
        except OSError:
            pass
    return out


def read_stat(pid):
    """(utime s, stime s, threads) of one process, or None."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            rest = f.read().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    # rest[0] is field 3 (state): utime is field 14, stime 15, num_threads 20.
    return int(rest[11]) / CLK_TCK, int(rest[12]) / CLK_TCK, int(rest[17])


def read_status_kib(pid, keys):
    vals = dict.fromkeys(keys, 0)
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                k, _, v = line.partition(":")
                if k in vals:
                    vals[k] = int(v.split()[0])
    except OSError:
        pass
    return vals


def context_switches(pid):
    """Voluntary and involuntary context switches, summed over the threads."""
    vol = invol = 0
    try:
        tasks = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return 0, 0
    for task in tasks:
        try:
            with open(f"/proc/{pid}/task/{task}/status") as f:
                for line in f:
                    if line.startswith("voluntary_ctxt_switches:"):
                        vol += int(line.split()[1])
                    elif line.startswith("nonvoluntary_ctxt_switches:"):
                        invol += int(line.split()[1])
        except OSError:
            pass
    return vol, invol


def sample_tree(pid, full=True):
    """CPU (and, if full, memory/threads/context switches) of pid's tree."""
    s = {"utime": 0.0, "stime": 0.0, "threads": 0, "rss_kib": 0, "hwm_kib": 0,
         "vcsw": 0, "ivcsw": 0, "processes": 0}
    pids = process_tree(pid)
    for p in pids:          # CPU first: the cheap, time-critical part
        st = read_stat(p)
        if st:
            s["utime"] += st[0]
            s["stime"] += st[1]
            s["threads"] += st[2]
            s["processes"] += 1
    if full:
        for p in pids:
            m = read_status_kib(p, ("VmRSS", "VmHWM"))
            s["rss_kib"] += m["VmRSS"]
            s["hwm_kib"] += m["VmHWM"]
            v, i = context_switches(p)
            s["vcsw"] += v
            s["ivcsw"] += i
    return s


def sample_memory(pid):
    """RSS (KiB) and threads of pid's tree: /proc/<pid>/status only, cheap
    enough to take once a second even with 10 000 threads."""
    rss = threads = 0
    for p in process_tree(pid):
        m = read_status_kib(p, ("VmRSS", "Threads"))
        rss += m["VmRSS"]
        threads += m["Threads"]
    return rss, threads


def kill_tree(pid, sig):
    for p in reversed(process_tree(pid)):
        try:
            os.kill(p, sig)
        except ProcessLookupError:
            pass


def machine_cpu():
    """(busy, steal) CPU seconds of the whole machine since boot, from
    /proc/stat: busy = user + nice + system + irq + softirq; steal = time the
    hypervisor ran something else on our virtual CPUs."""
    with open("/proc/stat") as f:
        v = [int(x) for x in f.readline().split()[1:9]]
    user, nice, system, _idle, _iowait, irq, softirq, steal = v
    return (user + nice + system + irq + softirq) / CLK_TCK, steal / CLK_TCK


def softirq_seconds(cpus):
    """Softirq time (s) since boot on the given CPUs (all if None), from
    /proc/stat.  On loopback the kernel does the receiving side's TCP work
    in softirq on the sender's CPU, and runs a socket's delayed-ACK timer
    on the CPU where it was armed: part of this time on the server's CPUs is
    the load generator's TCP work, yet it is charged to whatever task was
    running there -- mostly the server."""
    total = 0
    with open("/proc/stat") as f:
        for line in f:
            if not line.startswith("cpu") or line.startswith("cpu "):
                continue
            fields = line.split()
            if cpus is None or int(fields[0][3:]) in cpus:
                total += int(fields[7])
    return total / CLK_TCK
