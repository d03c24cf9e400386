"""Unit tests of bench/servers/ab.py's pure parts: how a variant is read
from the command line, the ABBA order of the rounds, and the medians the
ratios are taken from."""

import os
import sys
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "bench", "servers"))
import ab  # noqa: E402


class ParseVariant(unittest.TestCase):
    def test_name_and_command(self):
        self.assertEqual(ab.parse_variant("fiber=build/release/apps/dumb_fiber --workers 1"),
                         ("fiber", {}, ["build/release/apps/dumb_fiber", "--workers", "1"]))

    def test_leading_assignments_are_the_environment(self):
        name, env, argv = ab.parse_variant("small=GORT_STACK_SIZE=16384 GORT_GUARD=mprotect ./dumb_fiber")
        self.assertEqual(name, "small")
        self.assertEqual(env, {"GORT_STACK_SIZE": "16384", "GORT_GUARD": "mprotect"})
        self.assertEqual(argv, ["./dumb_fiber"])

    def test_an_argument_with_equals_after_the_command_stays_an_argument(self):
        self.assertEqual(ab.parse_variant("x=/bin/server --opt=1")[2], ["/bin/server", "--opt=1"])

    def test_quoting_as_a_shell_would(self):
        self.assertEqual(ab.parse_variant("q=/bin/server 'a b'")[2], ["/bin/server", "a b"])

    def test_errors(self):
        for bad in ("noequals", "=cmd", "name=", "name=   ", "bad name=/bin/x", "env=A=1 B=2"):
            with self.subTest(bad=bad), self.assertRaises(ValueError):
                ab.parse_variant(bad)


class RoundOrder(unittest.TestCase):
    def test_abba(self):
        names = ["a", "b", "c"]
        self.assertEqual([ab.round_order(names, r) for r in range(4)],
                         [["a", "b", "c"], ["c", "b", "a"], ["a", "b", "c"], ["c", "b", "a"]])

    def test_every_variant_runs_as_often_first_as_last_over_even_rounds(self):
        names = ["a", "b"]
        firsts = [ab.round_order(names, r)[0] for r in range(6)]
        self.assertEqual(firsts.count("a"), firsts.count("b"))


class Summarize(unittest.TestCase):
    def test_median_min_max_per_field(self):
        runs = [{"cpu_us_per_request": v, "window_throughput": 1000.0 * v} for v in (10.0, 12.0, 11.0, 30.0)]
        s = ab.summarize(runs)
        self.assertEqual(s["cpu_us_per_request"], {"median": 11.5, "min": 10.0, "max": 30.0})
        self.assertEqual(s["window_throughput"]["median"], 11500.0)

    def test_fields_a_run_did_not_measure_are_left_out(self):
        s = ab.summarize([{"cpu_us_per_request": 9.0, "server_cpus_softirq_us_per_request": None}])
        self.assertEqual(s["cpu_us_per_request"]["median"], 9.0)
        self.assertNotIn("server_cpus_softirq_us_per_request", s)
        self.assertEqual(ab.summarize([]), {})


if __name__ == "__main__":
    unittest.main()
