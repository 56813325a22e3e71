"""Gatewarden in the lab: loaded on the gateway's two links and read through its own exporter.

`load` and `unload` run from the host's mount namespace (pins live in the host's /sys/fs/bpf), naming the
gateway namespace. The counters come from `gatewarden serve`'s /metrics, as an operator's Prometheus would
read them:

    gatewarden_xdp_packets_total{interface="atk0",action="drop",reason="rate_subnet"} 12345
    gatewarden_nft_rule_packets_total{table="gatewarden",chain="input",rule="new-connections-v4"} 7

    exporter = Exporter(binary, "lab-1-gw", cleanup); exporter.start()
    layers = LayerCounters.of(parse_metrics(exporter.scrape()), interface="atk0")
"""
import os
import re
import socket
import subprocess
import time
import urllib.request

from processes import LabError, end_group, run

# nftables rules (by comment, the metric's `rule` label) that drop or reset what they match.
REFUSING_RULES = ("blocklist", "escalate", "escalated", "auth-subnet", "new-connections", "concurrent-connections",
                  "conntrack-cap")
# Rules that answer a SYN with a SYN cookie instead of letting it reach a socket.
SYNPROXY_RULES = ("synproxy-v4", "synproxy-v6")

_SAMPLE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?\s+(\S+)')
_LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"')


def parse_metrics(text):
    """[(name, {label: value}, value)] of a Prometheus text exposition; comments and odd lines are skipped."""
    samples = []
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        match = _SAMPLE.match(line)
        if not match:
            continue
        try:
            value = float(match.group(3))
        except ValueError:
            continue
        labels = dict(_LABEL.findall(match.group(2) or ""))
        samples.append((match.group(1), labels, value))
    return samples


def _refusing(rule):
    return any(rule == name or rule.startswith(name + "-") for name in REFUSING_RULES) or rule.startswith("policy-blocklist")


class LayerCounters:
    """What Gatewarden's layers counted for one interface (XDP) and the namespace (nftables)."""

    def __init__(self, xdp_dropped=0, xdp_passed=0, nft_refused=0, synproxy_cookies=0, refused_by_rule=None,
                 xdp_answered=0):
        self.xdp_dropped = xdp_dropped
        self.xdp_passed = xdp_passed
        # SYNs the XDP program answered itself with a SYN cookie (action syncookie): they never reach the stack.
        self.xdp_answered = xdp_answered
        self.nft_refused = nft_refused
        self.synproxy_cookies = synproxy_cookies
        self.refused_by_rule = refused_by_rule or {}

    @classmethod
    def of(cls, samples, interface):
        counters = cls()
        for name, labels, value in samples:
            if name == "gatewarden_xdp_packets_total" and labels.get("interface") == interface:
                if labels.get("action") == "drop":
                    counters.xdp_dropped += int(value)
                elif labels.get("action") == "syncookie":
                    counters.xdp_answered += int(value)
                else:
                    counters.xdp_passed += int(value)
            elif name == "gatewarden_nft_rule_packets_total":
                rule = labels.get("rule", "")
                if rule in SYNPROXY_RULES:
                    counters.synproxy_cookies += int(value)
                elif _refusing(rule):
                    counters.nft_refused += int(value)
                    if value:
                        counters.refused_by_rule[rule] = int(value)
        return counters

    def minus(self, earlier):
        return LayerCounters(self.xdp_dropped - earlier.xdp_dropped, self.xdp_passed - earlier.xdp_passed,
                             self.nft_refused - earlier.nft_refused, self.synproxy_cookies - earlier.synproxy_cookies,
                             {r: v - earlier.refused_by_rule.get(r, 0) for r, v in self.refused_by_rule.items()
                              if v - earlier.refused_by_rule.get(r, 0)},
                             self.xdp_answered - earlier.xdp_answered)


class Gatewarden:
    """Loads and unloads Gatewarden on the gateway's interfaces."""

    def __init__(self, binary, namespace, interfaces, cleanup):
        self.binary = binary
        self.namespace = namespace
        self.interfaces = interfaces
        self.loaded = False
        cleanup.push("gatewarden unload", self.unload)

    def load(self, policy=None):
        for interface in self.interfaces:
            arguments = [self.binary, "load", "--interface", interface, "--netns", self.namespace]
            if policy:
                arguments += ["--policy", policy]
            self.loaded = True
            run(arguments)

    def unload(self):
        if not self.loaded:
            return
        problems = []
        for interface in self.interfaces:
            result = subprocess.run([self.binary, "unload", "--interface", interface, "--netns", self.namespace],
                                    capture_output=True, text=True, timeout=60)
            if result.returncode != 0 and "no gatewarden" not in (result.stderr + result.stdout).lower():
                problems.append(result.stderr.strip())
        self.loaded = False
        if problems:
            raise LabError("unload: " + "; ".join(problems))


class Exporter:
    """`gatewarden serve` for the gateway namespace, on a free loopback port of the host."""

    def __init__(self, binary, namespace, folder, cleanup):
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.port = probe.getsockname()[1]
        log_path = os.path.join(folder, "serve.log")
        with open(log_path, "w") as log:
            self.process = subprocess.Popen(
                # --no-enforce: the lab measures what each layer does to the traffic it is sent; bans by the
                # enforce loop would move a source from one counter to another between runs.
                [binary, "serve", "--no-enforce", "--netns", namespace, "--web.listen-address", f"127.0.0.1:{self.port}"],
                stdin=subprocess.DEVNULL, stdout=log, stderr=log, start_new_session=True)
        cleanup.push(f"gatewarden serve (pid {self.process.pid})", lambda: end_group(self.process))
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise LabError(f"gatewarden serve exited ({self.process.returncode}): " + open(log_path).read()[-400:])
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{self.port}/-/healthy", timeout=1).read()
                return
            except OSError:
                time.sleep(0.1)
        raise LabError("gatewarden serve did not answer /-/healthy within 15 s")

    def scrape(self):
        with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/metrics", timeout=5) as response:
            return response.read().decode()
