"""Drop throughput on veth: how many packets per second a receiver namespace gets rid of, per filter.

One source (198.51.100.7) floods TCP SYNs to port 443 (random source port and sequence) from the client
namespace with trafgen pinned to one CPU. On veth the receiver's work runs on that same CPU, inside the
generator's send, so frames per second of the generator are frames per second the receiver absorbs:
the CPU's whole budget split between making a frame and getting rid of it. Every filter drops the same
flood, is measured the same way, and takes turns with the others round after round (the machine is
noisy); the figure is the median round.

Filters, each installed alone in a fresh state:
  no filter            the stack answers every SYN with a RST (no listener on 443)
  conntrack            nftables `ct state new` drop: conntrack makes an entry per SYN, the rule drops it
  nftables meter       a per-source meter over 100/s (Gatewarden's own nftables layer limits this way)
  nftables ingress     a netdev ingress rule dropping the source before the IP stack
  XDP generic          `gatewarden load --xdp-mode generic`: the source over its limit, dropped
  XDP native           `gatewarden load --xdp-mode native`: the same, in the veth's driver path

    python3 veth_drop.py --tag bench-1234-drop --gatewarden .build/release/gatewarden [--frames 1000000] [--rounds 3]
"""

import argparse

from benchlab import GATEWAY_INTERFACE, Lab, emit, exit_on_sigterm, log, median, run

SOURCE = "198.51.100.7"


class NFTablesFilter:
    """A ruleset loaded with `nft -f -` in the gateway namespace; removed by deleting its table."""

    def __init__(self, name, table, ruleset):
        self.name, self.table, self.ruleset = name, table, ruleset

    def install(self, lab):
        lab.gateway_run(["nft", "-f", "-"], input=self.ruleset)

    def remove(self, lab):
        lab.gateway_run(["nft", "delete", "table"] + self.table.split(), check=False)


class GeneratorAlone:
    """The floor: the gateway's end of the veth is down, so veth drops every frame at the sender and the
    rate is the generator's own (making a frame, the qdisc, veth's transmit). What a filter adds to it is
    the receiver's share."""

    name = "generator alone (gateway link down)"
    counts_at_sender = True

    def install(self, lab):
        run(["ip", "-n", lab.gateway, "link", "set", GATEWAY_INTERFACE, "down"])

    def remove(self, lab):
        run(["ip", "-n", lab.gateway, "link", "set", GATEWAY_INTERFACE, "up"])


class NoFilter:
    name = "no filter (stack answers RST)"

    def install(self, lab):
        pass

    def remove(self, lab):
        pass


class GatewardenFilter:
    """Gatewarden loaded on the gateway's veth in one XDP mode, with its default policy (100 packets/s
    per source, burst 200): the flooding source is over its limit after the first 200 frames."""

    def __init__(self, binary, mode):
        self.binary, self.mode = binary, mode
        self.name = f"Gatewarden XDP {mode}"

    def install(self, lab):
        run([self.binary, "load", "--interface", GATEWAY_INTERFACE, "--netns", lab.gateway, "--xdp-mode", self.mode])

    def remove(self, lab):
        run([self.binary, "unload", "--interface", GATEWAY_INTERFACE, "--netns", lab.gateway], check=False)


def filters(binary):
    return [
        GeneratorAlone(),
        NoFilter(),
        NFTablesFilter("conntrack (nft ct state new drop)", "inet bench_ct", """
            table inet bench_ct {
                chain prerouting {
                    type filter hook prerouting priority filter; policy accept;
                    ct state new tcp dport 443 drop
                }
            }"""),
        NFTablesFilter("nftables meter (per source, over 100/s)", "inet bench_meter", f"""
            table inet bench_meter {{
                chain prerouting {{
                    type filter hook prerouting priority -150; policy accept;
                    tcp dport 443 meter bench_sources size 65536 {{ ip saddr limit rate over 100/second burst 200 packets }} drop
                }}
            }}"""),
        NFTablesFilter("nftables netdev ingress (source dropped)", "netdev bench_ingress", f"""
            table netdev bench_ingress {{
                chain ingress {{
                    type filter hook ingress device "{GATEWAY_INTERFACE}" priority -500; policy accept;
                    ip saddr {SOURCE} drop
                }}
            }}"""),
        GatewardenFilter(binary, "generic"),
        GatewardenFilter(binary, "native"),
    ]


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--tag", required=True)
    parser.add_argument("--gatewarden", required=True)
    parser.add_argument("--frames", type=int, default=1_000_000)
    parser.add_argument("--rounds", type=int, default=3)
    options = parser.parse_args()
    exit_on_sigterm()

    contenders = filters(options.gatewarden)
    rates = {contender.name: [] for contender in contenders}
    with Lab(options.tag) as lab:
        packet = lab.syn_packet(source=SOURCE)
        for round in range(1, options.rounds + 1):
            for contender in contenders:
                contender.install(lab)
                try:
                    lab.trafgen(packet, count=20_000, seconds=10)  # warm: buckets over their limit, caches hot
                    burst = lab.trafgen(packet, count=options.frames, seconds=60)
                finally:
                    contender.remove(lab)
                handled = burst.sent if getattr(contender, "counts_at_sender", False) else burst.received
                rate = handled / burst.seconds
                rates[contender.name].append(rate)
                log(f"veth drop, round {round}: {contender.name}: {burst}, {rate:,.0f}/s")

    floor_ns = 1e9 / median(rates[contenders[0].name])
    baseline = median(rates[contenders[1].name])
    emit({
        "frames": options.frames,
        "rounds": options.rounds,
        "rows": [{"filter": name, "packets_per_second": median(values), "vs_no_filter": median(values) / baseline,
                  "ns_per_packet": 1e9 / median(values), "receiver_ns_per_packet": 1e9 / median(values) - floor_ns,
                  "samples": values}
                 for name, values in rates.items()],
    })


if __name__ == "__main__":
    main()
