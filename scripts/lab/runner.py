"""Builds the lab once and runs scenarios in it, each without and with Gatewarden.

    lab = Lab(binary, repository, cleanup, seconds=5, hold_seconds=3600)
    lab.build([BY_NAME["syn-flood"]])
    result = lab.run(BY_NAME["syn-flood"], protected=True)    # a dict: one row of the report

A run: nginx started afresh, Gatewarden loaded (with the scenario's policy, if any) or not, the legitimate
clients and the attack agents started and told to go at once, counters sampled until all of them end,
Gatewarden unloaded, nginx stopped.
"""
import os
import tempfile
import time

from gatewarden import Exporter, Gatewarden
from network import LabNetwork
from nginx import Nginx, NginxConfig
from processes import Agent
from sampler import Sampler
from scenarios import (AgentRun, KEEP_ALIVE_RATE, KEEP_ALIVE_SOURCE, NEW_CONNECTION_RATE, NEW_CONNECTION_SOURCE)


class Target:
    """Where attack agents aim: the gateway's address and MAC on the attack link."""

    def __init__(self, address, mac):
        self.address = address
        self.mac = mac


class Lab:
    def __init__(self, binary, repository, cleanup, seconds, hold_seconds, progress=None):
        self.binary = binary
        self.repository = repository
        self.cleanup = cleanup
        self.seconds = seconds
        self.progress = progress
        self.folder = tempfile.mkdtemp(prefix=f"gatewarden-lab-{os.getpid()}-")
        cleanup.push(f"folder {self.folder}", self._remove_folder)
        self.network = LabNetwork(os.getpid(), cleanup, hold_seconds)
        self.gatewarden = None
        self.exporter = None
        self.nginx_config = None
        self.target = None

    def _remove_folder(self):
        for root, directories, files in os.walk(self.folder, topdown=False):
            for name in files:
                os.remove(os.path.join(root, name))
            for name in directories:
                os.rmdir(os.path.join(root, name))
        os.rmdir(self.folder)

    def build(self, scenarios):
        self.network.create()
        attack = self.network.attack_link
        self.network.add_client_addresses(self.network.user_link, [KEEP_ALIVE_SOURCE, NEW_CONNECTION_SOURCE], prefix=24)
        for scenario in scenarios:
            if scenario.addresses:
                self.network.add_client_addresses(attack, [a.split("/")[0] for a in scenario.addresses],
                                                  prefix=int(scenario.addresses[0].split("/")[1]))
            for route in scenario.routes:
                self.network.route_to_attacker(route)
        self.target = Target(attack.gateway_address, self.network.gateway_mac(attack))
        self.nginx_config = NginxConfig.write(self.folder, self.repository)
        self.gatewarden = Gatewarden(self.binary, self.network.gateway,
                                     [attack.gateway_interface, self.network.user_link.gateway_interface], self.cleanup)
        self.exporter = Exporter(self.binary, self.network.gateway, self.folder, self.cleanup)

    def _legitimate(self):
        common = {"host": self.network.user_link.gateway_address, "port": 443, "path": "/", "seconds": self.seconds}
        return [AgentRun("legit", dict(common, source=KEEP_ALIVE_SOURCE, keep_alive=True, rate=KEEP_ALIVE_RATE)),
                AgentRun("legit", dict(common, source=NEW_CONNECTION_SOURCE, keep_alive=False, rate=NEW_CONNECTION_RATE))]

    def run(self, scenario, protected):
        nginx = Nginx(self.network.gateway, self.nginx_config, self.cleanup)
        try:
            if protected:
                policy = None
                if scenario.policy:
                    policy = os.path.join(self.folder, f"{scenario.name}.yaml")
                    with open(policy, "w") as f:
                        f.write(scenario.policy)
                self.gatewarden.load(policy)
            time.sleep(0.3)  # let the previous run's stragglers (retransmissions, closes) pass
            legitimate = [Agent.start(a.name, self.network.users, a.spec, self.cleanup, a.cpu) for a in self._legitimate()]
            attack = [Agent.start(a.name, self.network.attacker, a.spec, self.cleanup, a.cpu)
                      for a in scenario.attack(self.target, self.seconds)]
            label = f"{scenario.name} ({'with' if protected else 'without'} Gatewarden)"
            sampler = Sampler(self, label, self.seconds, progress=self.progress)
            cpu_before = nginx.worker_cpu_seconds()
            sampler.start()
            started = time.monotonic()
            for agent in legitimate + attack:
                agent.go()
            outcomes = [agent.outcome(timeout=self.seconds + 20) for agent in attack]
            legit = [agent.outcome(timeout=self.seconds + 20) for agent in legitimate]
            elapsed = time.monotonic() - started
            samples = sampler.stop()
            cpu = nginx.worker_cpu_seconds() - cpu_before
            statuses = nginx.log_statuses(exclude_prefix="203.0.113.")
        finally:
            nginx.stop()
            if protected:
                self.gatewarden.unload()
        return self._result(scenario, protected, samples, outcomes, legit, cpu, elapsed, statuses)

    def _result(self, scenario, protected, samples, outcomes, legit, cpu, elapsed, statuses):
        first, last = samples[0], samples[-1]
        layers = last["layers"].minus(first["layers"])
        arrived = last["arrived"] - first["arrived"]
        ok = sum(o["ok"] for o in legit)
        failed = sum(o["failed"] for o in legit)
        flood_seconds = [o["seconds"] for o in outcomes if "seconds" in o]
        return {
            "scenario": scenario.name,
            "gatewarden": protected,
            "policy": "lab" if scenario.policy and protected else ("default" if protected else None),
            "seconds": round(elapsed, 2),
            "attack_seconds": max(flood_seconds) if flood_seconds else self.seconds,
            "attack_packets": last["sent"] - first["sent"],
            "arrived": arrived,
            "dropped_xdp": layers.xdp_dropped,
            "dropped_nft": layers.nft_refused,
            "refused_by_rule": layers.refused_by_rule,
            # SYN cookies from either layer: the XDP program's (generic mode) and nftables' synproxy's.
            "synproxy_cookies": layers.synproxy_cookies + layers.xdp_answered,
            "reached_gateway": arrived - layers.xdp_dropped - layers.xdp_answered,
            "nginx_connections": last["opens"] - first["opens"],
            "nginx_attack_requests": sum(statuses.values()),
            "nginx_429": statuses.get("429", 0),
            "nginx_cpu_percent": round(100 * cpu / elapsed, 1) if elapsed > 0 else 0,
            "legit_requests": ok + failed,
            "legit_success_percent": round(100 * ok / (ok + failed), 2) if ok + failed else 0.0,
            "legit_p50_ms": max((o["p50_ms"] for o in legit if o["p50_ms"] is not None), default=None),
            "legit_p99_ms": max((o["p99_ms"] for o in legit if o["p99_ms"] is not None), default=None),
            "legit_errors": [e for o in legit for e in o["errors"]][:3],
            # Each client on its own: a keep-alive connection and a new connection per request fare differently.
            "legit_keep_alive": {k: legit[0][k] for k in ("ok", "failed", "p50_ms", "p99_ms")},
            "legit_new_connections": {k: legit[1][k] for k in ("ok", "failed", "p50_ms", "p99_ms")},
            "attack_outcome": {k: v for o in outcomes for k, v in o.items() if k != "seconds"},
            "samples": samples,
        }
