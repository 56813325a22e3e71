"""The lab's scenarios: what each sends, from where, and what it must show with Gatewarden.

A scenario names its attack agents (agents/*.py) and their specs for a run of `seconds`, the addresses and
routes it needs (added once, when the lab is built), an optional policy of its own, and a check of its
outcome. Every scenario runs twice, without and with Gatewarden, and a legitimate keep-alive client and a
new-connection client run alongside in both (legit.py, from 203.0.113.0/24 on a link of their own).

    for scenario in SCENARIOS: print(scenario.name, scenario.sends)
"""
from dataclasses import dataclass, field

SINGLE_SOURCE = "198.51.100.7"
SLOWLORIS_SOURCES = [f"192.0.2.{i}" for i in range(10, 18)]
STUFFING_SOURCES = [f"100.100.{i}.2" for i in range(100)]
# Distributed: 4,096 sources, 16 in each of 256 /24s of 100.64.0.0/16, ordered so that consecutive frames
# rotate through the /24s (each /24 gets an even share at any moment).
DISTRIBUTED_SUBNETS, DISTRIBUTED_HOSTS = 256, 16
DISTRIBUTED_SOURCES = [f"100.64.{s}.{10 + h}" for h in range(DISTRIBUTED_HOSTS) for s in range(DISTRIBUTED_SUBNETS)]
# The distributed flood's own policy: per /24 100 packets/s (burst 200) instead of 500/s (burst 1,000), so that
# 256 /24s at twice their limit (51,200 packets/s) fit what a Python generator offers on a small machine. The
# per-source limit stays the default (1,000/s), which every source stays far under (12.5/s).
DISTRIBUTED_POLICY = """# The lab's policy for the distributed scenario (scripts/lab/scenarios.py): the default, with a
# smaller per-/24 limit so that hundreds of /24s can be driven over it from one small machine.
limits:
  per_subnet: {rate: 100/second, burst: 200}
"""
DISTRIBUTED_SUBNET_RATE, DISTRIBUTED_SUBNET_BURST = 100, 200
DISTRIBUTED_OFFER_PER_SUBNET = 2 * DISTRIBUTED_SUBNET_RATE

# Gatewarden's default per-/24 limit, the binding one for a single source (its per-source limit is higher).
DEFAULT_SUBNET_RATE, DEFAULT_SUBNET_BURST = 500, 1000

# The legitimate clients.
KEEP_ALIVE_SOURCE, NEW_CONNECTION_SOURCE = "203.0.113.10", "203.0.113.11"
KEEP_ALIVE_RATE, NEW_CONNECTION_RATE = 20, 5


@dataclass
class AgentRun:
    """One agent of a run: its program (agents/NAME.py), its spec, the CPU it is pinned to if any."""
    name: str
    spec: dict
    cpu: int = None


@dataclass
class Scenario:
    name: str
    sends: str                      # one line: what the attack is
    attack: object                  # (lab addresses, seconds) -> [AgentRun]
    addresses: list = field(default_factory=list)   # added to the attacker's interface
    routes: list = field(default_factory=list)      # networks routed from the gateway to the attacker
    policy: str = None              # YAML of the scenario's own policy, None: the built-in default
    check: object = None            # (with-run result) -> [failed assertion], or None


def flood(target, sources, seconds, rate=0, distinct=8192, max_rate=600_000):
    return AgentRun("flood", {"interface": "eth0", "gateway_mac": target.mac, "destination": target.address,
                              "port": 443, "sources": sources, "rate": rate, "seconds": seconds,
                              "max_packets": int(max_rate * seconds), "distinct": distinct}, cpu=0)


def check_single_source(result):
    """XDP drops >= 99% of what arrived above the source's /24 budget (rate x time + burst)."""
    budget = DEFAULT_SUBNET_RATE * result["attack_seconds"] + DEFAULT_SUBNET_BURST
    above = result["arrived"] - budget
    if above <= 0:
        return [f"single-source-flood: the flood never exceeded its limit ({result['arrived']} packets arrived, budget {budget:.0f})"]
    share = result["dropped_xdp"] / above
    result["check_detail"] = f"XDP dropped {100 * share:.2f}% of the {above:,.0f} packets above the limit"
    if share < 0.99:
        return [f"single-source-flood: XDP dropped {100 * share:.2f}% of the packets above the limit (want >= 99%)"]
    return []


def check_distributed(result):
    """Each /24 is held to its limit +-10%: what XDP passed per /24 against rate x time + burst."""
    budget = DISTRIBUTED_SUBNET_RATE * result["attack_seconds"] + DISTRIBUTED_SUBNET_BURST
    offered = result["arrived"] / DISTRIBUTED_SUBNETS
    passed = (result["arrived"] - result["dropped_xdp"]) / DISTRIBUTED_SUBNETS
    result["check_detail"] = f"per /24: offered {offered:,.0f}, passed {passed:,.0f}, limit {budget:,.0f} packets"
    if offered < 1.1 * budget:
        return [f"distributed: the generator offered {offered:.0f} packets per /24, not over the limit of {budget:.0f}"]
    if abs(passed - budget) > 0.1 * budget:
        return [f"distributed: XDP passed {passed:.0f} packets per /24, limit {budget:.0f} (want within 10%)"]
    return []


def _single_source(target, seconds):
    return [flood(target, [SINGLE_SOURCE], seconds),
            AgentRun("requests_flood", {"host": target.address, "port": 443, "source": SINGLE_SOURCE, "path": "/",
                                        "threads": 8, "seconds": seconds})]


def _distributed(target, seconds):
    return [flood(target, DISTRIBUTED_SOURCES, seconds, rate=DISTRIBUTED_OFFER_PER_SUBNET * DISTRIBUTED_SUBNETS,
                  distinct=2 * len(DISTRIBUTED_SOURCES))]


def _syn_flood(target, seconds):
    return [flood(target, {"random": "198.18.0.0/15"}, seconds, distinct=65536)]


def _slowloris(target, seconds):
    return [AgentRun("slowloris", {"host": target.address, "port": 80, "sources": SLOWLORIS_SOURCES,
                                   "per_source": 100, "seconds": seconds})]


def _stuffing(target, seconds):
    return [AgentRun("stuffing", {"host": target.address, "port": 8443, "sources": STUFFING_SOURCES, "burst": 5,
                                  "interval": 1.5, "seconds": seconds})]


SCENARIOS = [
    Scenario("single-source-flood", f"SYNs as fast as one CPU sends plus HTTPS requests on 8 threads, all from {SINGLE_SOURCE}",
             _single_source, addresses=[f"{SINGLE_SOURCE}/24"], routes=["198.51.100.0/24"], check=check_single_source),
    Scenario("distributed", f"SYNs from {len(DISTRIBUTED_SOURCES):,} sources in {DISTRIBUTED_SUBNETS} /24s, "
             f"each /24 at {DISTRIBUTED_OFFER_PER_SUBNET}/s (twice its limit), each source at "
             f"{DISTRIBUTED_OFFER_PER_SUBNET / DISTRIBUTED_HOSTS:g}/s (lab policy: {DISTRIBUTED_SUBNET_RATE}/s per /24)",
             _distributed, routes=["100.64.0.0/16"], policy=DISTRIBUTED_POLICY, check=check_distributed),
    Scenario("syn-flood", "spoofed SYNs from random sources in 198.18.0.0/15 as fast as one CPU sends",
             _syn_flood, routes=["198.18.0.0/15"]),
    Scenario("slowloris", f"{len(SLOWLORIS_SOURCES)} sources each keeping 100 connections open on port 80 with unfinished requests (re-opened when closed)",
             _slowloris, addresses=[f"{a}/24" for a in SLOWLORIS_SOURCES]),
    Scenario("credential-stuffing", f"logins on 8443 from {len(STUFFING_SOURCES)} /24s, each 5 at once then one every 1.5 s "
             "(twice the auth port's 20/minute per /24), a new TLS connection each",
             _stuffing, addresses=[f"{a}/32" for a in STUFFING_SOURCES], routes=["100.100.0.0/16"]),
    Scenario("legit", "no attack: the keep-alive and the new-connection clients alone", lambda target, seconds: []),
]

BY_NAME = {s.name: s for s in SCENARIOS}
