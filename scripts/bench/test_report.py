"""Unit tests of report.py (no root, nothing measured): the Swift benchmarks' printed tables are read as
they print them, and a section whose tool printed something unreadable says so instead of passing as skipped.

    python3 -m unittest discover -s scripts/bench
"""

import json
import os
import tempfile
import unittest

import report

XDP = """gatewarden-bench: kernel Debian GNU/Linux 12 (bookworm), 2 CPUs, median of 7 runs

One hot source (1000000 repeats per run):
  program                                   ns/packet   minus empty   vs naive
  empty XDP_PASS                                 28.0           0.0        0.22x
  naive fixed window                            127.0          99.0        1.00x
  gatewarden, over limit (dropped)              105.0          77.0        0.83x

Spoofed flood, 1000000 distinct sources, back to back in the kernel (harness cost included):
  program                                   ns/packet   minus empty   vs naive
  empty XDP_PASS                                 29.0           0.0        0.07x
  naive fixed window                            424.0         395.0        1.00x
  gatewarden (default limits)                   206.0         177.0        0.49x
"""

SCRAPE = """measured 1000 sources, 1000 set elements

gatewarden-scrape-bench: 30 scrapes per row over loopback; times in ms; the exporter's RSS after them, and its peak
sources    set elems   scrape median   scrape p99   RSS MB   peak RSS MB   seed nft+python   per-key walk   batch walk
     1000        1000            18.1         30.1     28.8          31.7              70.9            3.5          1.4
  1000000       65000           276.6        973.0     52.6          75.7             359.7         1544.7        276.8
"""

LISTS = """list       entries  step                                    median s   (runs)
blocklist  5000     gatewarden load (first, empty list)        1.413   (1.413 1.409 1.459)
blocklist  5000     gatewarden load (same list again)          0.356   (0.415 0.356 0.354)
"""


class ParsingTests(unittest.TestCase):
    def test_xdp_tables_keep_titles_rows_and_the_drop_figure(self):
        tables = report.parse_xdp(XDP)
        self.assertEqual(list(tables), ["One hot source (1000000 repeats per run)",
                                        "Spoofed flood, 1000000 distinct sources, back to back in the kernel (harness cost included)"])
        self.assertEqual(tables["One hot source (1000000 repeats per run)"][2], ("gatewarden, over limit (dropped)", 105.0, 77.0, 0.83))
        self.assertEqual(report.xdp_drop_ns(tables), 105.0)

    def test_scrape_rows_are_the_numeric_lines_only(self):
        rows = report.parse_scrape(SCRAPE)
        self.assertEqual(len(rows), 2)
        self.assertEqual(rows[1][:4], [1000000.0, 65000.0, 276.6, 973.0])

    def test_list_rows_keep_the_step_name_with_its_spaces(self):
        rows = report.parse_lists(LISTS)
        self.assertEqual(rows[0], ("blocklist", 5000, "gatewarden load (first, empty list)", 1.413, "1.413 1.409 1.459"))
        self.assertEqual(rows[1][2], "gatewarden load (same list again)")


class RenderingTests(unittest.TestCase):
    def setUp(self):
        self.directory = tempfile.TemporaryDirectory()
        self.results = self.directory.name

    def tearDown(self):
        self.directory.cleanup()

    def write(self, name, text):
        with open(os.path.join(self.results, name), "w") as file:
            file.write(text)

    def test_ratios_use_figures_of_the_same_run(self):
        self.write("xdp.txt", XDP)
        self.write("nginx_reject.json", json.dumps({"nginx": "nginx/1.22.1", "ticks_per_second": 100, "rounds": 1, "rows": [
            {"client": "plain HTTP, keep-alive", "requests": 1000, "ticks": [2], "us_per_request": 21.0, "samples": [21.0]}]}))
        markdown = report.render(self.results, 60, "quick", "sudo scripts/bench.sh --quick")
        self.assertIn("| plain HTTP, keep-alive | 1,000 | 2 | 21.0 | 105.0 | 200x |", markdown)
        self.assertIn("**200x** an XDP drop", markdown)

    def test_a_failed_section_shows_its_words_and_the_others_still_render(self):
        self.write("scrape.txt", SCRAPE)
        self.write("syn_flood.error", "stopped after 240 s")
        markdown = report.render(self.results, 60, "quick", "x")
        self.assertIn("the section failed.** Its last words:\n\n```\nstopped after 240 s", markdown)
        self.assertIn("| 1,000,000 | 65,000 | 276.6 |", markdown)

    def test_unreadable_tool_output_is_not_taken_for_a_skipped_section(self):
        self.write("lists.txt", "a format nobody parses\n")
        markdown = report.render(self.results, 60, "quick", "x")
        self.assertIn("has no table this report can read", markdown)
        self.assertIn("a format nobody parses", markdown)

    def test_the_enforce_benchmarks_are_shown_as_printed_and_a_missing_one_says_why(self):
        self.write("bans.txt", "gatewarden-ban-bench: 100000 bans\nxdp  1.30  77000\n")
        markdown = report.render(self.results, 60, "quick", "x")
        self.assertIn("```\ngatewarden-ban-bench: 100000 bans\nxdp  1.30  77000\n```", markdown)
        self.assertIn("## Enforce loop", markdown)
        self.assertNotIn("not yet measured", markdown)


if __name__ == "__main__":
    unittest.main()
