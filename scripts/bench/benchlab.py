"""Shared pieces of the benchmark scripts: a two-namespace lab, commands, counters and medians.

A Lab is two network namespaces joined by a veth pair: a gateway (the receiver, where the filter
under test sits) and a client (the sender). Names carry the tag bench.sh passes (its own PID), so
they never clash with other runs, and bench.sh can remove whatever a killed script left behind.

    with Lab("bench-1234-drop") as lab:
        lab.gateway_run(["nft", "-f", "-"], input="...")
        sent = lab.trafgen(frames, count=100_000)

Addresses are documentation ranges that live only inside the lab: 192.0.2.0/24 on the link, a
flooding source in 198.51.100.0/24, spoofed sources anywhere (their replies are routed back into
the client namespace, where nothing answers them).
"""

import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time

GATEWAY_ADDRESS = "192.0.2.1"
CLIENT_ADDRESS = "192.0.2.2"
GATEWAY_INTERFACE = "bgw0"
CLIENT_INTERFACE = "bcl0"

# The CPU generators run on. On veth the receiver's softirq runs on the sender's CPU, inside its send,
# so a generator pinned here measures what the gateway absorbs on one CPU; the gateway's processes
# (nginx) are pinned to the other.
GENERATOR_CPU = 0
SERVER_CPU = 1


def log(message):
    """Progress goes to stderr; stdout carries the script's JSON result."""
    print(f"bench: {message}", file=sys.stderr, flush=True)


def run(arguments, input=None, check=True, timeout=60):
    """Runs a command and returns its stdout; a failure raises with the command's own words."""
    result = subprocess.run(arguments, input=input, capture_output=True, text=True, timeout=timeout)
    if check and result.returncode != 0:
        raise RuntimeError(f"{' '.join(arguments)} exited {result.returncode}: {result.stderr.strip()}")
    return result.stdout


def median(values):
    return statistics.median(values) if values else float("nan")


def contents(path):
    """A file's text, the file closed at once."""
    with open(path) as file:
        return file.read()


def exit_on_sigterm():
    """SIGTERM (bench.sh's trap, `timeout`) unwinds like Ctrl-C, so every `finally` removes what it made."""
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))


def emit(result):
    """The script's result, one JSON document on stdout."""
    json.dump(result, sys.stdout, indent=1)
    print()


class Burst:
    """What one trafgen run did: frames it sent, frames the gateway's veth took in, wall-clock seconds."""

    def __init__(self, sent, received, seconds):
        self.sent, self.received, self.seconds = sent, received, seconds

    def __repr__(self):
        return f"{self.sent} sent, {self.received} received in {self.seconds:.2f} s"


class Lab:
    """Two network namespaces joined by a veth pair, removed on exit (also on an exception or a signal)."""

    def __init__(self, tag):
        self.gateway = f"{tag}-gw"
        self.client = f"{tag}-cl"
        self.workdir = tempfile.mkdtemp(prefix=f"{tag}-")
        os.chmod(self.workdir, 0o755)  # nginx's workers (www-data) read the files served from it

    def __enter__(self):
        try:
            self.create()
        except BaseException:
            self.remove()
            raise
        return self

    def __exit__(self, *_):
        self.remove()

    def create(self):
        for namespace in (self.gateway, self.client):
            run(["ip", "netns", "add", namespace])
        run(["ip", "link", "add", GATEWAY_INTERFACE, "netns", self.gateway, "type", "veth",
             "peer", "name", CLIENT_INTERFACE, "netns", self.client])
        run(["ip", "-n", self.gateway, "addr", "add", f"{GATEWAY_ADDRESS}/24", "dev", GATEWAY_INTERFACE])
        run(["ip", "-n", self.client, "addr", "add", f"{CLIENT_ADDRESS}/24", "dev", CLIENT_INTERFACE])
        for namespace, interface in ((self.gateway, GATEWAY_INTERFACE), (self.client, CLIENT_INTERFACE)):
            run(["ip", "-n", namespace, "link", "set", "lo", "up"])
            run(["ip", "-n", namespace, "link", "set", interface, "up"])
        # A queue in front of the client's veth, as a real NIC has: while the gateway's XDP ring is full,
        # veth stops its queue and the generator waits, instead of its frames being dropped at the sender.
        run(["tc", "-n", self.client, "qdisc", "replace", "dev", CLIENT_INTERFACE, "root", "pfifo"])
        # Replies to any other source (RSTs, SYN-ACKs to spoofed addresses) go back into the client
        # namespace, which does not forward: they never leave the lab.
        run(["ip", "-n", self.gateway, "route", "add", "default", "via", CLIENT_ADDRESS])

    def remove(self):
        """Ends the processes left in the namespaces (they are this lab's), then deletes both."""
        for namespace in (self.gateway, self.client):
            pids = run(["ip", "netns", "pids", namespace], check=False).split()
            for pid in pids:
                try:
                    os.kill(int(pid), signal.SIGKILL)
                except (ProcessLookupError, ValueError):
                    pass
            run(["ip", "netns", "del", namespace], check=False)
        subprocess.run(["rm", "-rf", self.workdir], check=False)

    def path(self, name):
        return os.path.join(self.workdir, name)

    def gateway_run(self, arguments, **options):
        return run(["ip", "netns", "exec", self.gateway] + arguments, **options)

    def link_stats(self, namespace, interface):
        output = run(["ip", "-n", namespace, "-j", "-s", "link", "show", interface])
        return json.loads(output)[0]["stats64"]

    def gateway_mac(self):
        return json.loads(run(["ip", "-n", self.gateway, "-j", "link", "show", GATEWAY_INTERFACE]))[0]["address"]

    def gateway_received(self):
        """Frames the gateway's veth took in: passed up plus dropped (XDP drops count as received and dropped)."""
        rx = self.link_stats(self.gateway, GATEWAY_INTERFACE)["rx"]
        return rx["packets"]

    def trafgen(self, packet, count, seconds, cpu=GENERATOR_CPU):
        """Sends `count` frames described by `packet` (trafgen's packet language) from the client as fast
        as the client's CPU hands them to its veth, bounded by `seconds`. Returns a Burst.

        trafgen runs in the client namespace with --no-sock-mem (a namespace cannot tune net.core's socket
        memory, and trafgen otherwise gives up) and through the qdisc (so backpressure waits, not drops)."""
        config = self.path("packet.trafgen")
        with open(config, "w") as file:
            file.write(packet + "\n")
        before = self.gateway_received()
        start = time.monotonic()
        output = run(["ip", "netns", "exec", self.client, "timeout", "-s", "INT", str(seconds),
                      "taskset", "-c", str(cpu), "trafgen", "--dev", CLIENT_INTERFACE, "--conf", config,
                      "--num", str(count), "--cpus", "1", "--qdisc-path", "--no-sock-mem", "--notouch-irq",
                      "--no-cpu-stats"], check=False, timeout=seconds + 10)
        elapsed = time.monotonic() - start
        sent = next((int(line.split()[0]) for line in output.splitlines() if line.strip().endswith("packets outgoing")), 0)
        return Burst(sent=sent, received=self.gateway_received() - before, seconds=elapsed)

    def syn_packet(self, source="198.51.100.7", port=443):
        """A TCP SYN to the gateway's `port` from `source` ("random" for a new spoofed source per frame),
        with a random source port and sequence number."""
        saddr = "drnd()" if source == "random" else source
        return (f"{{ eth(da={self.gateway_mac()}), ipv4(saddr={saddr}, daddr={GATEWAY_ADDRESS}, ttl=64), "
                f"tcp(sp=drnd(), dp={port}, seq=drnd(), syn) }}")


class Nginx:
    """nginx in the lab's gateway namespace, one worker, master and worker pinned to SERVER_CPU, everything
    it writes in the lab's folder. `http` is the body of its http block. Stopped through its pid file on
    exit; whatever is left dies with the lab's namespaces.

        with Nginx(lab, 'server { listen 80; location / { return 200 "ok\\n"; } }') as nginx:
            print(nginx.worker)
    """

    def __init__(self, lab, http):
        self.lab = lab
        self.config = lab.path("nginx.conf")
        with open(self.config, "w") as file:
            file.write(f"""
                worker_processes 1;
                pid {lab.path("nginx.pid")};
                error_log {lab.path("error.log")};
                events {{ worker_connections 4096; }}
                http {{
                    client_body_temp_path {lab.path("body")}; proxy_temp_path {lab.path("proxy")};
                    fastcgi_temp_path {lab.path("fastcgi")}; uwsgi_temp_path {lab.path("uwsgi")};
                    scgi_temp_path {lab.path("scgi")};
                    access_log off;
                {http}
                }}
                """)

    def __enter__(self):
        self.lab.gateway_run(["nginx", "-t", "-q", "-c", self.config])
        self.process = subprocess.Popen(["ip", "netns", "exec", self.lab.gateway, "taskset", "-c", str(SERVER_CPU),
                                         "nginx", "-c", self.config, "-g", "daemon off;"],
                                        stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and self.process.poll() is None:
            try:
                master = int(contents(self.lab.path("nginx.pid")))
                workers = contents(f"/proc/{master}/task/{master}/children").split()
                if workers:
                    self.master, self.worker = master, int(workers[0])
                    return self
            except (OSError, ValueError):
                pass
            time.sleep(0.05)
        self.__exit__()
        log_path = self.lab.path("error.log")
        raise RuntimeError("nginx did not start: " + (contents(log_path) if os.path.exists(log_path) else ""))

    def __exit__(self, *_):
        try:
            os.kill(int(contents(self.lab.path("nginx.pid"))), signal.SIGTERM)
            self.process.wait(timeout=5)
        except (OSError, ValueError, subprocess.TimeoutExpired):
            self.process.kill()
