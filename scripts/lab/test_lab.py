"""Unit tests of the lab's pure parts (no root, no namespaces): metrics and /proc parsing, the layer
counters, the checks, the table and the SVG.

    python3 -B -m unittest discover -s scripts/lab -p 'test_*.py'
"""
import unittest
import xml.etree.ElementTree as ElementTree

from gatewarden import LayerCounters, parse_metrics
from network import parse_snmp
from report import compact, for_json, table
from sampler import rates
from scenarios import BY_NAME, DISTRIBUTED_SUBNETS, check_distributed, check_single_source
from svg import render

METRICS = """# HELP gatewarden_xdp_packets_total Packets judged.
# TYPE gatewarden_xdp_packets_total counter
gatewarden_xdp_packets_total{interface="atk0",action="drop",reason="rate_subnet"} 900
gatewarden_xdp_packets_total{interface="atk0",action="drop",reason="rate_ip"} 100
gatewarden_xdp_packets_total{interface="atk0",action="pass",reason="limited"} 50
gatewarden_xdp_packets_total{interface="atk0",action="syncookie",reason="within_limit"} 300
gatewarden_xdp_packets_total{interface="usr0",action="drop",reason="rate_ip"} 7
gatewarden_nft_rule_packets_total{table="gatewarden",chain="input",rule="synproxy-v4"} 40
gatewarden_nft_rule_packets_total{table="gatewarden",chain="input",rule="synproxy-ack-v4"} 30
gatewarden_nft_rule_packets_total{table="gatewarden",chain="input",rule="new-connections-v4"} 5
gatewarden_nft_rule_packets_total{table="gatewarden",chain="input",rule="concurrent-connections-v4"} 2
gatewarden_nft_rule_packets_total{table="gatewarden",chain="prerouting",rule="policy-blocklist-v4"} 1
gatewarden_nft_rule_packets_total{table="gatewarden",chain="input",rule="allowlist-v4"} 99
gatewarden_nft_rule_packets_total{table="gatewarden",chain="prerouting",rule="syn-to-protected-ports"} 40
gatewarden_up{collector="nftables"} 1
broken line without a value
gatewarden_build_info{version="a \\"quoted\\" one"} 1
"""


def result(**values):
    base = {"scenario": "legit", "gatewarden": True, "policy": "default", "attack_seconds": 5.0, "attack_packets": 0,
            "arrived": 0, "dropped_xdp": 0, "dropped_nft": 0, "synproxy_cookies": 0, "reached_gateway": 0,
            "nginx_connections": 0, "nginx_429": 0, "nginx_cpu_percent": 1.0, "legit_success_percent": 100.0,
            "legit_p50_ms": 3.0, "legit_p99_ms": 9.0, "samples": []}
    base.update(values)
    return base


class MetricsTests(unittest.TestCase):
    def test_parses_names_labels_and_values_and_skips_the_rest(self):
        samples = parse_metrics(METRICS)
        self.assertEqual(len(samples), 14)
        self.assertIn(("gatewarden_up", {"collector": "nftables"}, 1.0), samples)
        self.assertEqual(samples[-1][1]["version"], 'a \\"quoted\\" one')

    def test_layer_counters_take_one_interface_and_sort_rules_by_what_they_do(self):
        layers = LayerCounters.of(parse_metrics(METRICS), "atk0")
        self.assertEqual(layers.xdp_dropped, 1000)
        self.assertEqual(layers.xdp_passed, 50)  # answered in XDP is not passed up
        self.assertEqual(layers.xdp_answered, 300)
        self.assertEqual(layers.synproxy_cookies, 40)
        self.assertEqual(layers.nft_refused, 8)  # neither the allowlist, the ACK check nor notrack refuse
        self.assertEqual(layers.refused_by_rule, {"new-connections-v4": 5, "concurrent-connections-v4": 2,
                                                  "policy-blocklist-v4": 1})
        later = LayerCounters(1500, 60, 10, 45, {"new-connections-v4": 7}, xdp_answered=320)
        difference = later.minus(layers)
        self.assertEqual((difference.xdp_dropped, difference.nft_refused, difference.synproxy_cookies), (500, 2, 5))
        self.assertEqual(difference.xdp_answered, 20)
        self.assertEqual(difference.refused_by_rule, {"new-connections-v4": 2})


class ProcTests(unittest.TestCase):
    def test_snmp_pairs_header_and_value_lines(self):
        snmp = parse_snmp("Ip: Forwarding InReceives\nIp: 2 1234\nTcp: RtoAlgorithm PassiveOpens\nTcp: 1 56\n")
        self.assertEqual(snmp["Ip"]["InReceives"], 1234)
        self.assertEqual(snmp["Tcp"]["PassiveOpens"], 56)


class CheckTests(unittest.TestCase):
    def test_single_source_counts_only_what_arrived_above_the_limit(self):
        budget = 500 * 5 + 1000
        self.assertEqual(check_single_source(result(arrived=budget + 10_000, dropped_xdp=9_950)), [])
        failed = check_single_source(result(arrived=budget + 10_000, dropped_xdp=9_800))
        self.assertEqual(len(failed), 1)
        self.assertIn("98.00%", failed[0])
        self.assertIn("never exceeded", check_single_source(result(arrived=budget, dropped_xdp=0))[0])

    def test_distributed_holds_each_subnet_within_ten_percent_of_its_limit(self):
        budget = 100 * 5 + 200
        offered = 1000 * DISTRIBUTED_SUBNETS
        self.assertEqual(check_distributed(result(arrived=offered, dropped_xdp=offered - budget * DISTRIBUTED_SUBNETS)), [])
        self.assertIn("within 10%", check_distributed(result(arrived=offered, dropped_xdp=offered - 800 * DISTRIBUTED_SUBNETS))[0])
        self.assertIn("within 10%", check_distributed(result(arrived=offered, dropped_xdp=offered - 600 * DISTRIBUTED_SUBNETS))[0])
        self.assertIn("not over the limit", check_distributed(result(arrived=700 * DISTRIBUTED_SUBNETS, dropped_xdp=0))[0])

    def test_every_scenario_of_the_issue_exists(self):
        self.assertEqual(list(BY_NAME), ["single-source-flood", "distributed", "syn-flood", "slowloris",
                                         "credential-stuffing", "legit"])


class ReportTests(unittest.TestCase):
    def test_compact_numbers(self):
        self.assertEqual([compact(5), compact(12_345), compact(1_234_567), compact(12_345_678), compact(None), compact(2.5)],
                         ["5", "12,345", "1.2M", "12M", "-", "2.5"])

    def test_table_pairs_runs_and_names_the_scenario_once(self):
        lines = table([result(scenario="syn-flood", gatewarden=False, policy=None, attack_packets=634_624),
                       result(scenario="syn-flood", attack_packets=414_208, synproxy_cookies=414_234)]).splitlines()
        self.assertEqual(len(lines), 3)
        self.assertTrue(lines[1].startswith("syn-flood") and " no " in lines[1] and "634,624" in lines[1])
        self.assertTrue(lines[2].startswith(" ") and " yes " in lines[2] and "414,234" in lines[2])
        self.assertEqual(len({len(line) for line in lines[1:]}), 1)

    def test_json_leaves_out_the_time_series(self):
        self.assertNotIn("samples", for_json([result()])[0])


class SVGTests(unittest.TestCase):
    def samples(self, offered):
        return [{"t": t / 2, "sent": offered * t // 2, "arrived": offered * t // 2,
                 "layers": LayerCounters(xdp_dropped=offered * t // 4), "opens": t} for t in range(11)]

    def test_rates_per_layer(self):
        series = rates(self.samples(1000))
        self.assertEqual(len(series), 10)
        t, offered, past_xdp, past_nft, connections = series[0]
        self.assertEqual((t, offered, past_xdp, past_nft, connections), (0.5, 1000, 500, 500, 2))

    def test_the_picture_is_well_formed_with_a_panel_per_run(self):
        runs = [result(scenario="syn-flood", gatewarden=False, samples=self.samples(100_000)),
                result(scenario="syn-flood", samples=self.samples(50_000))]
        svg = render(runs)
        root = ElementTree.fromstring(svg)
        polylines = root.findall(".//{http://www.w3.org/2000/svg}polyline")
        self.assertEqual(len(polylines), 8)  # four layers in each of the two panels
        self.assertIn("without Gatewarden", svg)
        self.assertIn("with Gatewarden", svg)
        self.assertIn("100,000", svg)   # the log scale reaches the peak


if __name__ == "__main__":
    unittest.main()
