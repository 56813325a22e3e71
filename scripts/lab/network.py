"""The lab's network: a gateway namespace and two client namespaces, each joined to it by a veth pair.

    attacker (lab-TAG-atk)  eth0 192.0.2.2 ---- atk0 192.0.2.1  gateway (lab-TAG-gw): nginx, Gatewarden
    users    (lab-TAG-usr)  eth0 203.0.113.2 -- usr0 203.0.113.1

The attacker's sources live in ranges routed to it (documentation, benchmark and shared address space, none
of them reachable from the host): answers to spoofed sources go back into the attacker's namespace, which does
not forward them, so nothing leaves the lab. The legitimate clients have a /24 and a link of their own, so no
attack shares their budgets, only the gateway's CPU.

Counters are read from /proc/PID/net/ of a `sleep` process kept in each namespace (cheap enough for two
samples a second, unlike running `ip` each time).
"""
import json
import subprocess

from processes import LabError, end_group, run

def read_interfaces(pid):
    """{interface: {"rx_packets", "tx_packets"}} of the namespace of process `pid` (/proc/PID/net/dev)."""
    result = {}
    with open(f"/proc/{pid}/net/dev") as f:
        for line in f.readlines()[2:]:
            name, _, fields = line.partition(":")
            values = fields.split()
            if len(values) >= 10:
                result[name.strip()] = {"rx_packets": int(values[1]), "tx_packets": int(values[9])}
    return result

def parse_snmp(text):
    """{"Tcp": {"PassiveOpens": 3, ...}, ...} from /proc/net/snmp or /proc/net/netstat text (header line, then values)."""
    result = {}
    lines = text.splitlines()
    for header, values in zip(lines[0::2], lines[1::2]):
        group, _, names = header.partition(":")
        _, _, numbers = values.partition(":")
        result[group] = {name: int(number) for name, number in zip(names.split(), numbers.split())}
    return result

def read_snmp(pid):
    with open(f"/proc/{pid}/net/snmp") as f:
        snmp = parse_snmp(f.read())
    with open(f"/proc/{pid}/net/netstat") as f:
        snmp.update(parse_snmp(f.read()))
    return snmp

class Link:
    """One veth pair: the gateway's end and the client's end with their addresses."""

    def __init__(self, client_namespace, gateway_interface, gateway_address, client_address):
        self.client_namespace = client_namespace
        self.gateway_interface = gateway_interface
        self.client_interface = "eth0"
        self.gateway_address = gateway_address
        self.client_address = client_address

class LabNetwork:
    def __init__(self, tag, cleanup, hold_seconds):
        self.gateway = f"lab-{tag}-gw"
        self.attacker = f"lab-{tag}-atk"
        self.users = f"lab-{tag}-usr"
        self.attack_link = Link(self.attacker, "atk0", "192.0.2.1", "192.0.2.2")
        self.user_link = Link(self.users, "usr0", "203.0.113.1", "203.0.113.2")
        self.cleanup = cleanup
        self.hold_seconds = hold_seconds
        self.holders = {}

    @property
    def namespaces(self):
        return [self.gateway, self.attacker, self.users]

    def create(self):
        existing = run(["ip", "netns", "list"])
        for namespace in self.namespaces:
            if namespace in existing.split():
                raise LabError(f"namespace {namespace} already exists")
        for namespace in self.namespaces:
            run(["ip", "netns", "add", namespace])
            self.cleanup.push(f"namespace {namespace}", lambda n=namespace: run(["ip", "netns", "del", n]))
            run(["ip", "-n", namespace, "link", "set", "lo", "up"])
        for link in (self.attack_link, self.user_link):
            run(["ip", "link", "add", link.gateway_interface, "netns", self.gateway, "type", "veth",
                 "peer", "name", link.client_interface, "netns", link.client_namespace])
            run(["ip", "-n", self.gateway, "addr", "add", f"{link.gateway_address}/24", "dev", link.gateway_interface])
            run(["ip", "-n", link.client_namespace, "addr", "add", f"{link.client_address}/24", "dev", link.client_interface])
            run(["ip", "-n", self.gateway, "link", "set", link.gateway_interface, "up"])
            run(["ip", "-n", link.client_namespace, "link", "set", link.client_interface, "up"])
            # A queue in front of the client's veth, as a real NIC has: with XDP on the gateway's end, veth
            # stops its queue while the gateway's ring is full; without a qdisc the packets would be dropped
            # at the sender, a legitimate flow's beside a flood's.
            run(["tc", "-n", link.client_namespace, "qdisc", "replace", "dev", link.client_interface, "root", "pfifo"])
            run(["ip", "-n", link.client_namespace, "route", "add", "default", "via", link.gateway_address])
        for namespace in self.namespaces:
            process = subprocess.Popen(["nsenter", f"--net=/run/netns/{namespace}", "sleep", str(self.hold_seconds)],
                                       start_new_session=True)
            self.holders[namespace] = process.pid
            self.cleanup.push(f"counter holder in {namespace} (pid {process.pid})", lambda p=process: end_group(p))

    def add_client_addresses(self, link, addresses, prefix=32):
        """Adds addresses to a client's interface in one `ip -batch`."""
        commands = "".join(f"addr add {a}/{prefix} dev {link.client_interface}\n" for a in addresses)
        run(["ip", "-n", link.client_namespace, "-batch", "-"], input_text=commands)

    def route_to_attacker(self, network):
        """Answers to `network` go back into the attacker's namespace (and end there)."""
        run(["ip", "-n", self.gateway, "route", "add", network, "via", self.attack_link.client_address])

    def gateway_mac(self, link):
        links = json.loads(run(["ip", "-n", self.gateway, "-j", "link", "show", link.gateway_interface]))
        return links[0]["address"]

    def interfaces(self, namespace):
        return read_interfaces(self.holders[namespace])

    def gateway_snmp(self):
        return read_snmp(self.holders[self.gateway])
