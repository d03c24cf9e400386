"""Unit tests of bench/servers/footprint.py's pure parts: reading a
callgrind dump (totals, and the calls that count requests), the figures
per request, the table's ratios, and its flags."""

import contextlib
import io
import os
import sys
import tempfile
import unittest
from pathlib import Path

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "bench", "servers"))
import footprint  # noqa: E402

# A dump as callgrind writes it with compressed names: a name is given
# once with its id, then the id alone; two call sites of dumb::parse.
COMPRESSED = """# callgrind format
version: 1
events: Ir Dr Dw I1mr D1mr D1mw ILmr DLmr DLmw
summary: 10000 3000 2000 5 300 100 5 250 50

ob=(1) /bin/server
fl=(1) ???
fn=(1) serve(int)
cob=(2) /lib/libc.so.6
cfi=(2) ???
cfn=(5) recv
calls=4 0
0 90
cfn=(2) dumb::parse(std::basic_string_view<char>)
calls=7 0
0 700
fn=(2)
0 40
cfn=(3) dumb::parse_arg(std::basic_string_view<char>)
calls=1000 0
0 50
fn=(4) other()
cfn=(2)
calls=3 0
0 300
cfn=(1)
calls=9 0
0 10
"""

UNCOMPRESSED = """events: Ir DLmr DLmw
totals: 500 10 5
fn=loop
cfn=dumb::parse(std::basic_string_view<char>)
calls=5 0
0 100
"""


class ParseDump(unittest.TestCase):
    def test_compressed_names_count_every_call_site(self):
        totals, calls = footprint.parse_dump(COMPRESSED)
        self.assertEqual(totals["Ir"], 10000)
        self.assertEqual(totals["DLmw"], 50)
        self.assertEqual(calls, 10)  # 7 + 3; not parse_arg's 1000, not serve's 9

    def test_uncompressed_names(self):
        totals, calls = footprint.parse_dump(UNCOMPRESSED)
        self.assertEqual(totals, {"Ir": 500, "DLmr": 10, "DLmw": 5})
        self.assertEqual(calls, 5)

    def test_not_a_dump(self):
        for bad in ("", "events: Ir\n", "events: Ir Dr\nsummary: 1\n"):
            with self.subTest(bad=bad), self.assertRaises(ValueError):
                footprint.parse_dump(bad)


class PerRequest(unittest.TestCase):
    def test_figures(self):
        totals, calls = footprint.parse_dump(COMPRESSED)
        f = footprint.per_request(totals, calls)
        self.assertEqual(f["requests"], 10)
        self.assertAlmostEqual(f["instructions"], 1000)
        self.assertAlmostEqual(f["d1_misses"], 40)
        self.assertAlmostEqual(f["ll_misses"], 30)

    def test_nothing_counted(self):
        self.assertIsNone(footprint.per_request({"Ir": 5}, 0))
        self.assertIsNone(footprint.per_request({}, 3))


class Table(unittest.TestCase):
    def test_ratios_against_the_first_measured(self):
        results = {"a": {"failure": "no dump written"},
                   "b": {"figures": {"requests": 10, "instructions": 1000, "d1_misses": 20, "ll_misses": 20}},
                   "c": {"figures": {"requests": 10, "instructions": 500, "d1_misses": 5, "ll_misses": 5}}}
        lines = footprint.table(results, ["a", "b", "c"], (512 * 1024, 8, 64))
        self.assertIn("ratios against b", lines[0])
        self.assertIn("512 KiB, 8-way", lines[0])
        self.assertIn("failed: no dump written", lines[3])
        self.assertTrue(lines[4].endswith("| 1.00 | 1.00 |"))
        self.assertTrue(lines[5].endswith("| 0.50 | 0.25 |"))

    def test_a_zero_base_gives_no_ratio(self):
        results = {"b": {"figures": {"requests": 10, "instructions": 1000, "d1_misses": 0, "ll_misses": 0}},
                   "c": {"figures": {"requests": 10, "instructions": 500, "d1_misses": 5, "ll_misses": 5}}}
        lines = footprint.table(results, ["b", "c"], (1 << 20, 16, 64))
        self.assertTrue(lines[4].endswith("| 0.50 | - |"))


class Geometry(unittest.TestCase):
    def sysfs(self, root, caches):
        for i, (level, kind, size, ways, line) in enumerate(caches):
            d = Path(root) / f"index{i}"
            d.mkdir()
            for name, value in (("level", level), ("type", kind), ("size", size),
                                ("ways_of_associativity", ways), ("coherency_line_size", line)):
                (d / name).write_text(f"{value}\n")
        return Path(root)

    def test_the_level_2_cache_is_taken(self):
        with tempfile.TemporaryDirectory() as root:
            cache = self.sysfs(root, [(1, "Data", "32K", 8, 64), (1, "Instruction", "32K", 8, 64),
                                      (2, "Unified", "512K", 8, 64), (3, "Unified", "32768K", 16, 64)])
            self.assertEqual(footprint.l2_geometry(cache), (512 * 1024, 8, 64))

    def test_a_geometry_callgrind_refuses_falls_back(self):
        with tempfile.TemporaryDirectory() as root:  # 1536 KiB, 16-way: 1 536 sets, not a power of two
            cache = self.sysfs(root, [(2, "Unified", "1536K", 16, 64)])
            self.assertEqual(footprint.l2_geometry(cache), (1 << 20, 16, 64))

    def test_no_sysfs_falls_back(self):
        with tempfile.TemporaryDirectory() as root:
            self.assertEqual(footprint.l2_geometry(Path(root) / "missing"), (1 << 20, 16, 64))
            self.assertEqual(footprint.l2_geometry(self.sysfs(root, [(2, "Unified", "big", 8, 64)])),
                             (1 << 20, 16, 64))


class WindowDump(unittest.TestCase):
    def test_the_second_dump_is_the_window(self):
        with tempfile.TemporaryDirectory() as d:
            dump = Path(d) / "x.callgrind"
            for name in ("x.callgrind", "x.callgrind.1", "x.callgrind.2"):
                (Path(d) / name).write_text("")
            self.assertEqual(footprint.window_dump(dump), (Path(f"{dump}.2"), None))

    def test_a_missing_dump_is_a_failure(self):
        with tempfile.TemporaryDirectory() as d:
            dump = Path(d) / "x.callgrind"
            dump.write_text("")  # written at exit only: neither control request dumped
            self.assertIn("warm-up", footprint.window_dump(dump)[1])
            Path(f"{dump}.1").write_text("")  # only one dump: .1 would hold the window and more
            self.assertIn("window", footprint.window_dump(dump)[1])


class CheckLoad(unittest.TestCase):
    def test_verdicts(self):
        good = {"errors": 0, "timeouts": 0, "connect_failures": 0, "all_up_s": 1.0}
        self.assertIsNone(footprint.check_load(good, 4))
        self.assertIn("no summary", footprint.check_load(None, 4))
        self.assertIn("1 errors", footprint.check_load({**good, "timeouts": 1}, 4))
        self.assertIn("not every connection", footprint.check_load({**good, "all_up_s": 4.0}, 4))
        self.assertIn("not every connection", footprint.check_load({**good, "all_up_s": None}, 4))


class Flags(unittest.TestCase):
    def parse_fails(self, argv):
        with contextlib.redirect_stderr(io.StringIO()) as err, self.assertRaises(SystemExit) as cm:
            footprint.parse_args(argv)
        self.assertEqual(cm.exception.code, 2)
        return err.getvalue()

    def test_bounds_and_names(self):
        self.assertIn("--connections", self.parse_fails(["--connections", "0", "a=/bin/x"]))
        self.assertIn("--warmup", self.parse_fails(["--warmup", "0", "a=/bin/x"]))
        self.assertIn("--window", self.parse_fails(["--window", "601", "a=/bin/x"]))
        self.assertIn("must differ", self.parse_fails(["a=/bin/x", "a=/bin/y"]))
        self.assertIn("NAME=COMMAND", self.parse_fails(["noequals"]))

    def test_defaults(self):
        args = footprint.parse_args(["fiber=GORT_PROCS=1 /bin/server --workers 1"])
        self.assertEqual((args.connections, args.warmup, args.window), (10000, 4, 12))
        self.assertEqual(args.parsed, [("fiber", {"GORT_PROCS": "1"}, ["/bin/server", "--workers", "1"])])


if __name__ == "__main__":
    unittest.main()
