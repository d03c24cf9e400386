"""Unit tests of bench/servers/ab.py's pure parts: how a variant is read
from the command line, the ABBA order of the rounds, and the medians the
ratios are taken from."""

import contextlib
import io
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
        for bad in ("noequals", "=cmd", "name=", "name=   ", "bad name=/bin/x", "env=A=1 B=2", "q=/bin/x 'open"):
            with self.subTest(bad=bad), self.assertRaises(ValueError):
                ab.parse_variant(bad)


class RoundOrder(unittest.TestCase):
    def test_abba(self):
        names = ["a", "b", "c"]
        self.assertEqual([ab.round_order(names, r) for r in range(4)],
                         [["a", "b", "c"], ["c", "b", "a"], ["a", "b", "c"], ["c", "b", "a"]])

    def test_every_variant_has_the_same_mean_position_over_even_rounds(self):
        names = ["a", "b", "c", "d"]
        orders = [ab.round_order(names, r) for r in range(6)]
        means = {n: sum(o.index(n) for o in orders) / len(orders) for n in names}
        self.assertEqual(set(means.values()), {1.5})


class ParseArgs(unittest.TestCase):
    def exits_2(self, *argv):
        with self.assertRaises(SystemExit) as e, contextlib.redirect_stderr(io.StringIO()) as err:
            ab.parse_args(list(argv))
        self.assertEqual(e.exception.code, 2)
        return err.getvalue()

    def test_rounds_must_be_even(self):
        self.assertIn("even", self.exits_2("--rounds", "3", "a=/bin/x"))
        self.assertIn("even", self.exits_2("--rounds", "0", "a=/bin/x"))
        self.assertEqual(ab.parse_args(["--rounds", "2", "a=/bin/x"]).rounds, 2)

    def test_bounds_and_names(self):
        self.assertIn("--connections", self.exits_2("--connections", "0", "a=/bin/x"))
        self.assertIn("--duration", self.exits_2("--duration", "1", "a=/bin/x"))
        self.assertIn("must differ", self.exits_2("a=/bin/x", "a=/bin/y"))
        self.assertIn("want NAME=COMMAND", self.exits_2("justacommand"))


def measured(cpu, **fields):
    return {"cpu_us_per_request": cpu, "load_generator_bound": False, **fields}


class TableAndStatus(unittest.TestCase):
    def test_ratios_against_the_first_variant_measured(self):
        summary = {"gone": ab.summarize([]), "a": ab.summarize([measured(10.0)]),
                   "b": ab.summarize([measured(8.0, load_generator_bound=True)])}
        lines = ab.table(summary, ["gone", "a", "b"], 2)
        self.assertIn("CPU ratio against a", lines[0])
        self.assertIn("| gone | no successful run |", lines[3])
        self.assertTrue(lines[4].endswith("| 1 of 2 (0) | 1.000 |"), lines[4])
        self.assertTrue(lines[5].endswith("| 1 of 2 (1) | 0.800 |"), lines[5])

    def test_nothing_measured(self):
        summary = {"a": ab.summarize([])}
        self.assertIn("no variant measured", ab.table(summary, ["a"], 2)[0])
        self.assertEqual(ab.exit_status(summary), 1)

    def test_exit_status_fails_when_any_variant_has_no_run(self):
        ok = ab.summarize([measured(9.0)])
        self.assertEqual(ab.exit_status({"a": ok, "b": ok}), 0)
        self.assertEqual(ab.exit_status({"a": ok, "b": ab.summarize([])}), 1)


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
        self.assertEqual(ab.summarize([]), {"runs": 0, "load_generator_bound_runs": 0})

    def test_counts_load_generator_bound_runs(self):
        s = ab.summarize([measured(9.0, load_generator_bound=True), measured(9.5), measured(9.2)])
        self.assertEqual((s["runs"], s["load_generator_bound_runs"]), (3, 1))


if __name__ == "__main__":
    unittest.main()
