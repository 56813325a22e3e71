"""A spoofed SYN flood against a real nginx (TLS), with and without Gatewarden, in the same run.

The gateway namespace runs nginx (one worker, pinned to the second CPU, TLS with an RSA 2048
certificate). From the client namespace, pinned to the first CPU:
  - trafgen floods TCP SYNs to 443 from random spoofed sources spread over the whole unicast space
    (first octet 1-223, so no /24 sees more than a few packets: under every per-source and per-subnet
    limit, as a flood from the internet would be), for a fixed time;
  - a legitimate HTTPS client opens a new TLS connection per request, 10 a second, over the flood,
    sharing the generator's CPU as if it shared the uplink.
On veth the gateway's softirq runs on the generator's CPU, so frames the gateway received per second are
what it absorbs. A sampler reads the gateway's conntrack count every 50 ms: the entries a round added (the
legitimate client's own connections among them, once Gatewarden loaded conntrack). Rounds without
Gatewarden, with it as `gatewarden load` sets it up by default (on veth generic XDP mode, where the XDP
program answers SYNs with cookies itself) and with `--xdp-mode native` (SYNs go on to nftables' synproxy)
alternate; medians count.

    python3 syn_flood.py --tag bench-1234-syn --gatewarden .build/release/gatewarden [--seconds 5] [--rounds 3]
"""

import argparse
import json
import subprocess
import time

from benchlab import GATEWAY_ADDRESS, GATEWAY_INTERFACE, GENERATOR_CPU, Lab, Nginx, emit, exit_on_sigterm, log, median, run

CLIENT = r"""
import json, socket, ssl, sys, time
host, rate, seconds = sys.argv[1], float(sys.argv[2]), float(sys.argv[3])
context = ssl.create_default_context()
context.check_hostname = False
context.verify_mode = ssl.CERT_NONE
latencies, failed, errors = [], 0, []
start = time.monotonic()
due = start
for i in range(int(rate * seconds)):
    # The next request is due one interval after the last was due or ended, whichever is later: a user
    # after a slow page goes on at their pace, not with every request they missed at once.
    delay = due - time.monotonic()
    if delay > 0:
        time.sleep(delay)
    began = time.monotonic()
    try:
        with context.wrap_socket(socket.create_connection((host, 443), timeout=3)) as sock:
            sock.sendall(b"GET / HTTP/1.1\r\nHost: gateway\r\nConnection: close\r\n\r\n")
            data = b""
            while True:
                chunk = sock.recv(4096)
                if not chunk:
                    break
                data += chunk
        if not data.startswith(b"HTTP/1.1 200"):
            raise Exception(data[:40])
        latencies.append((time.monotonic() - began) * 1000)
    except Exception as e:
        failed += 1
        errors.append(repr(e)[:100])
    due = max(due, began) + 1 / rate
latencies.sort()
pick = lambda q: round(latencies[min(len(latencies) - 1, int(len(latencies) * q))], 1) if latencies else -1
print(json.dumps({"ok": len(latencies), "failed": failed, "p50_ms": pick(0.5), "p99_ms": pick(0.99), "errors": errors[:3]}))
"""

# Reads the namespace's conntrack count every 50 ms until its input closes; prints how far the highest rose
# above the first (entries of earlier rounds' connections linger for their timeouts; they are not this round's).
SAMPLER = r"""
import select, sys
def count():
    try:
        with open("/proc/sys/net/netfilter/nf_conntrack_count") as file:
            return int(file.read())
    except OSError:
        return 0
start = peak = count()
while not select.select([sys.stdin], [], [], 0.05)[0]:
    peak = max(peak, count())
print(peak - start)
"""


def nginx_http(lab):
    run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=gateway",
         "-keyout", lab.path("key.pem"), "-out", lab.path("cert.pem")])
    return f"""
        server {{
            listen 443 ssl backlog=4096;
            ssl_certificate {lab.path("cert.pem")};
            ssl_certificate_key {lab.path("key.pem")};
            location / {{ return 200 "ok\\n"; }}
        }}
        """


def flood_round(lab, packet, seconds):
    """One round: sampler and client started, the flood for `seconds`, then both collected."""
    sampler = subprocess.Popen(["ip", "netns", "exec", lab.gateway, "python3", "-c", SAMPLER],
                               stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    client = subprocess.Popen(["ip", "netns", "exec", lab.client, "taskset", "-c", str(GENERATOR_CPU),
                               "timeout", str(int(seconds) + 30), "python3", "-c", CLIENT, GATEWAY_ADDRESS, "10",
                               str(seconds + 1)], stdout=subprocess.PIPE, text=True)
    try:
        time.sleep(0.5)
        burst = lab.trafgen(packet, count=int(seconds * 2_000_000), seconds=seconds)
        outcome = json.loads(client.communicate(timeout=seconds + 40)[0].strip().splitlines()[-1])
        peak = int(sampler.communicate(input="", timeout=10)[0].strip() or 0)
    finally:
        for process in (client, sampler):
            if process.poll() is None:
                process.kill()
    return {"absorbed_per_second": burst.received / burst.seconds, "received": burst.received,
            "seconds": burst.seconds, "legitimate": outcome, "conntrack_peak": peak}


def summary(rounds):
    return {
        "absorbed_per_second": median([r["absorbed_per_second"] for r in rounds]),
        "samples": [r["absorbed_per_second"] for r in rounds],
        "legitimate_ok": sum(r["legitimate"]["ok"] for r in rounds),
        "legitimate_failed": sum(r["legitimate"]["failed"] for r in rounds),
        "legitimate_p50_ms": median([r["legitimate"]["p50_ms"] for r in rounds]),
        "legitimate_p99_ms": median([r["legitimate"]["p99_ms"] for r in rounds]),
        "errors": sum((r["legitimate"]["errors"] for r in rounds), [])[:3],
        "conntrack_peak": max(r["conntrack_peak"] for r in rounds),
    }


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--tag", required=True)
    parser.add_argument("--gatewarden", required=True)
    parser.add_argument("--seconds", type=float, default=5)
    parser.add_argument("--rounds", type=int, default=3)
    options = parser.parse_args()
    exit_on_sigterm()

    instance = ["--interface", GATEWAY_INTERFACE]
    variants = {"without": None, "with": [], "native": ["--xdp-mode", "native"]}
    results = {name: [] for name in variants}
    with Lab(options.tag) as lab:
        instance += ["--netns", lab.gateway]
        packet = (f"{{ eth(da={lab.gateway_mac()}), ipv4(saddr=drnd(), saddr[0]=drnd(1, 223), daddr={GATEWAY_ADDRESS}, "
                  f"ttl=64), tcp(sp=drnd(), dp=443, seq=drnd(), syn) }}")
        with Nginx(lab, nginx_http(lab)):
            for round in range(1, options.rounds + 1):
                for name, load_options in variants.items():
                    if load_options is not None:
                        run([options.gatewarden, "load"] + load_options + instance)
                    try:
                        result = flood_round(lab, packet, options.seconds)
                    finally:
                        if load_options is not None:
                            run([options.gatewarden, "unload"] + instance, check=False)
                    results[name].append(result)
                    log(f"SYN flood, round {round}, {name}: {result['absorbed_per_second']:,.0f} SYN/s absorbed, "
                        f"legitimate {result['legitimate']['ok']} ok {result['legitimate']['failed']} failed, "
                        f"conntrack entries added {result['conntrack_peak']}")
    emit({
        "seconds": options.seconds,
        "rounds": options.rounds,
        "without": summary(results["without"]),
        "with": summary(results["with"]),
        "native": summary(results["native"]),
    })


if __name__ == "__main__":
    main()
