"""Counters of every layer, sampled about every 0.5 s while a run lasts, for the picture and the progress line.

Each sample is a dict of cumulative counters at time `t` (seconds since the run started):

    {"t": 1.5, "sent": 51200, "arrived": 51200, "dropped_xdp": 0, "refused_nft": 0, "cookies": 51200,
     "opens": 12}

`rates()` turns them into per-second rates per layer: offered (what the attacker sent), past XDP (what
reached the gateway's stack from the attack link), past nftables (of that, what no rule refused or
answered with a SYN cookie) and connections nginx's sockets accepted (from both links).
"""
import sys
import threading
import time

from gatewarden import LayerCounters, parse_metrics


class Sampler:
    def __init__(self, lab, label, seconds, interval=0.5, progress=None):
        self.lab = lab
        self.label = label
        self.seconds = seconds
        self.interval = interval
        self.progress = sys.stderr.isatty() if progress is None else progress
        self.samples = []
        self._stop = threading.Event()
        self._thread = None
        self._start = None

    def read(self):
        """One sample of every counter, now."""
        network = self.lab.network
        attacker = network.interfaces(network.attacker).get("eth0", {})
        gateway = network.interfaces(network.gateway).get(network.attack_link.gateway_interface, {})
        try:
            layers = LayerCounters.of(parse_metrics(self.lab.exporter.scrape()), network.attack_link.gateway_interface)
        except OSError:
            layers = self.samples[-1]["layers"] if self.samples else LayerCounters()
        tcp = network.gateway_snmp().get("Tcp", {})
        return {"t": time.monotonic() - self._start if self._start else 0.0, "sent": attacker.get("tx_packets", 0),
                "arrived": gateway.get("rx_packets", 0), "layers": layers, "opens": tcp.get("PassiveOpens", 0)}

    def start(self):
        self._start = time.monotonic()
        self.samples.append(self.read())
        self._thread = threading.Thread(target=self._loop, daemon=True)
        self._thread.start()

    def _loop(self):
        while not self._stop.wait(self.interval):
            self.samples.append(self.read())
            if self.progress:
                s, first = self.samples[-1], self.samples[0]
                sys.stderr.write(f"\r  {self.label:<42} {s['t']:5.1f}/{self.seconds} s  "
                                 f"{s['sent'] - first['sent']:>12,} packets sent  ")
                sys.stderr.flush()

    def stop(self):
        self._stop.set()
        if self._thread:
            self._thread.join()
        self.samples.append(self.read())
        if self.progress:
            sys.stderr.write("\r" + " " * 100 + "\r")
            sys.stderr.flush()
        return self.samples


def rates(samples):
    """[(t, offered, past_xdp, past_nft, nginx_connections)] per second between consecutive samples."""
    series = []
    for a, b in zip(samples, samples[1:]):
        dt = b["t"] - a["t"]
        if dt <= 0:
            continue
        la, lb = a["layers"], b["layers"]
        offered = (b["sent"] - a["sent"]) / dt
        past_xdp = max(0, (b["arrived"] - a["arrived"]) - (lb.xdp_dropped - la.xdp_dropped)
                       - (lb.xdp_answered - la.xdp_answered)) / dt
        past_nft = max(0, past_xdp - ((lb.nft_refused - la.nft_refused) + (lb.synproxy_cookies - la.synproxy_cookies)) / dt)
        series.append((b["t"], offered, past_xdp, past_nft, (b["opens"] - a["opens"]) / dt))
    return series
