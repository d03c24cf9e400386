"""Unit tests of bench/servers/report.py's target checks (issue 7's
targets): results are made up, small dicts with only the fields the checks
read, so each test pins one rule -- the RSS bound for a server that never
held every connection above all."""

import os
import sys
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "bench", "servers"))
import report  # noqa: E402


def result(server, workload, conns, **fields):
    r = {"server": server, "workload": workload, "connections": conns, "failed": False, "failure": ""}
    r.update(fields)
    return r


def course(server, conns, rss_mib, **fields):
    """A course-pattern step that held every connection."""
    return result(server, "course", conns, rss_kib=int(rss_mib * 1024), rss_max_kib=int(rss_mib * 1024),
                  connections_peak=conns, **fields)


def collapsed(server, conns, held, rss_max_mib):
    """A step in which the server never had every connection up: no
    window, so no rss_kib, only the largest RSS sampled while trying."""
    return result(server, "course", conns, failed=True, failure=f"only {held} of {conns} connections came up",
                  rss_kib=None, rss_max_kib=int(rss_max_mib * 1024), rss_max_conns=held - 100,
                  connections_peak=held)


def ping(server, conns, cpu, user, sys_, tput=90000.0, p99=100.0, softirq=None):
    return result(server, "ping", conns, cpu_us_per_request=cpu, cpu_user_us_per_request=user,
                  cpu_sys_us_per_request=sys_, server_cpus_softirq_us_per_request=softirq,
                  window_throughput=tput, steady_p99_ms=p99)


def line(lines, prefix):
    found = [l for l in lines if prefix in l]
    assert len(found) == 1, (prefix, lines)
    return found[0]


class RssAgainstThreads(unittest.TestCase):
    def rss_line(self, fiber, other):
        """The RSS check against dumb_multithreaded, for these two results."""
        return line(report.target_checks([fiber, other]), "course @10000 RSS vs dumb_multithreaded")

    def test_collapsed_server_gives_a_lower_bound_that_passes(self):
        l = self.rss_line(course("dumb_fiber", 10000, 65.0),
                          collapsed("dumb_multithreaded", 10000, 7437, 332.6))
        self.assertTrue(l.startswith("PASS"), l)
        self.assertIn("a bound", l)
        self.assertIn("7437 of the 10 000", l)
        self.assertIn("ratio at most 0.20", l)

    def test_bound_fails_when_fiber_needs_more_than_a_quarter_of_it(self):
        l = self.rss_line(course("dumb_fiber", 10000, 90.0),
                          collapsed("dumb_multithreaded", 10000, 7437, 332.6))
        self.assertTrue(l.startswith("FAIL"), l)
        self.assertIn("ratio at most 0.27", l)

    def test_both_measured_is_a_plain_ratio(self):
        l = self.rss_line(course("dumb_fiber", 10000, 65.0),
                          course("dumb_multithreaded", 10000, 600.0))
        self.assertTrue(l.startswith("PASS"), l)
        self.assertNotIn("bound", l)
        self.assertIn("ratio 0.11", l)

    def test_no_bound_from_a_server_that_held_every_connection(self):
        # Held all 10 000 yet no rss_kib (say the window was missing): a
        # figure with every connection up is not a bound, so not measured.
        other = course("dumb_multithreaded", 10000, 600.0)
        other["rss_kib"] = None
        l = self.rss_line(course("dumb_fiber", 10000, 65.0), other)
        self.assertTrue(l.startswith("FAIL") and "not measured" in l, l)

    def test_no_bound_without_fiber_at_all_connections(self):
        fiber = collapsed("dumb_fiber", 10000, 9000, 60.0)
        l = self.rss_line(fiber, collapsed("dumb_multithreaded", 10000, 7437, 332.6))
        self.assertTrue(l.startswith("FAIL") and "not measured" in l, l)

    def test_older_results_without_rss_max_are_not_measured(self):
        other = collapsed("dumb_multithreaded", 10000, 7437, 332.6)
        del other["rss_max_kib"]
        l = self.rss_line(course("dumb_fiber", 10000, 65.0), other)
        self.assertTrue(l.startswith("FAIL") and "not measured" in l, l)


class PingCpu(unittest.TestCase):
    def test_ratio_and_split(self):
        lines = report.target_checks([ping("dumb_fiber", 10000, 10.81, 1.25, 9.55, softirq=3.90),
                                      ping("go-dumb", 10000, 11.98, 2.24, 9.72, softirq=3.36),
                                      ping("dumb_epoll_workers", 10000, 10.14, 0.63, 9.58)])
        go = line(lines, "ping @10000 CPU/request vs go-dumb")
        self.assertTrue(go.startswith("FAIL"), go)
        self.assertIn("ratio 0.90", go)
        self.assertIn("(user 1.25, system 9.55; softirq on its CPU 3.90)", go)
        self.assertIn("(user 2.24, system 9.72; softirq on its CPU 3.36)", go)
        epoll = line(lines, "ping @10000 CPU/request vs dumb_epoll_workers")
        self.assertTrue(epoll.startswith("PASS"), epoll)
        self.assertIn("(user 0.63, system 9.58)", epoll)  # no softirq figure recorded

    def test_split_from_seconds_for_older_results(self):
        r = ping("dumb_fiber", 1000, 8.0, None, None)
        del r["cpu_user_us_per_request"], r["cpu_sys_us_per_request"]
        r.update(server_cpu_user_s=0.5, server_cpu_sys_s=7.5, window_requests=1000000)
        self.assertAlmostEqual(report.per_request(r, "user"), 0.5)
        self.assertAlmostEqual(report.per_request(r, "sys"), 7.5)


if __name__ == "__main__":
    unittest.main()
