"""CPU per rejected request in nginx: what a `limit_req` 429 costs the worker, by kind of client.

nginx (one worker, pinned to the second CPU) serves a static file under `limit_req` at 1 request per
minute per client address, `nodelay`, status 429: after the first request every one is rejected. (A
`return 200` location would answer before limit_req runs, so the limited location serves a file.)
Four clients in the client namespace, pinned to the first CPU, send N requests between them, each
client one request after the other:

  plain HTTP, keep-alive        every request on one connection
  plain HTTP, new connection    a TCP connection per request
  TLS, keep-alive               one TLS 1.3 connection (ECDSA P-256 certificate)
  TLS, new connection           a full handshake per request (ECDSA P-256)
  TLS, new connection, RSA      the same with an RSA 2048 certificate

The worker's CPU (utime + stime from /proc/PID/stat, in clock ticks) over the run, divided by the
requests, is the figure; each kind takes turns with the others round after round and the median round
counts. The kernel's receive work for the client's packets runs on the client's CPU (veth), so it is
not in the worker's figure: the worker's figure is a floor of what a 429 costs the gateway.

    python3 nginx_reject.py --tag bench-1234-nginx [--scale 1.0] [--rounds 3]
"""

import argparse
import json
import os
import subprocess

from benchlab import GATEWAY_ADDRESS, GENERATOR_CPU, Lab, Nginx, contents, emit, exit_on_sigterm, log, median, run

TICKS_PER_SECOND = os.sysconf("SC_CLK_TCK")

# Clients at once, each on its own connection(s): under attack nginx finds several connections ready per
# wakeup, which makes each request cheaper than one client waiting for each answer would (about half here).
CLIENTS = 4

# (name, port, TLS, keep-alive, requests at scale 1)
KINDS = [
    ("plain HTTP, keep-alive", 80, False, True, 60_000),
    ("plain HTTP, new connection", 80, False, False, 20_000),
    ("TLS, keep-alive", 443, True, True, 40_000),
    ("TLS, new connection (ECDSA P-256)", 443, True, False, 4_000),
    ("TLS, new connection (RSA 2048)", 8443, True, False, 1_500),
]

CLIENT = r"""
import json, socket, ssl, sys, time
host, port, tls, keep_alive, count = sys.argv[1], int(sys.argv[2]), sys.argv[3] == "1", sys.argv[4] == "1", int(sys.argv[5])
context = ssl.create_default_context()
context.check_hostname = False
context.verify_mode = ssl.CERT_NONE
request = b"GET /index.html HTTP/1.1\r\nHost: gateway\r\n" + (b"" if keep_alive else b"Connection: close\r\n") + b"\r\n"
statuses = {}

def connect():
    sock = socket.create_connection((host, port), timeout=5)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return context.wrap_socket(sock) if tls else sock

def response(sock, buffer):
    # One response: headers, then Content-Length bytes of body. Returns (status, what is left over).
    while b"\r\n\r\n" not in buffer:
        data = sock.recv(65536)
        if not data:
            raise ConnectionError("closed mid-response")
        buffer += data
    head, _, rest = buffer.partition(b"\r\n\r\n")
    length = 0
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value)
    while len(rest) < length:
        data = sock.recv(65536)
        if not data:
            raise ConnectionError("closed mid-body")
        rest += data
    return int(head.split(b" ", 2)[1]), rest[length:]

sock, buffer = (connect() if keep_alive else None), b""
start = time.monotonic()
for _ in range(count):
    if not keep_alive:
        sock, buffer = connect(), b""
    sock.sendall(request)
    status, buffer = response(sock, buffer)
    statuses[status] = statuses.get(status, 0) + 1
    if not keep_alive:
        sock.close()
print(json.dumps({"seconds": time.monotonic() - start, "statuses": statuses}))
"""


def nginx_http(lab):
    """Two servers under limit_req at 1 request a minute per address: plain and TLS (ECDSA), and TLS (RSA)."""
    www = lab.path("www")
    os.makedirs(www, exist_ok=True)
    with open(os.path.join(www, "index.html"), "w") as file:
        file.write("ok\n")
    return f"""
        keepalive_requests 1000000;
        ssl_session_cache shared:bench_tls:1m;
        limit_req_zone $binary_remote_addr zone=bench:1m rate=1r/m;
        limit_req_status 429;
        server {{
            listen 80 backlog=4096;
            listen 443 ssl backlog=4096;
            ssl_certificate {lab.path("ecdsa.pem")};
            ssl_certificate_key {lab.path("ecdsa.key")};
            root {www};
            location / {{ limit_req zone=bench nodelay; }}
        }}
        server {{
            listen 8443 ssl backlog=4096;
            ssl_certificate {lab.path("rsa.pem")};
            ssl_certificate_key {lab.path("rsa.key")};
            root {www};
            location / {{ limit_req zone=bench nodelay; }}
        }}
        """


def make_certificates(lab):
    for name, key in (("ecdsa", ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1"]),
                      ("rsa", ["-newkey", "rsa:2048"])):
        run(["openssl", "req", "-x509", "-nodes", "-days", "1", "-subj", "/CN=gateway"] + key
            + ["-keyout", lab.path(f"{name}.key"), "-out", lab.path(f"{name}.pem")])


def cpu_ticks(pid):
    """utime + stime of a process, in clock ticks (fields 14 and 15 of /proc/PID/stat; the command
    name, field 2, is in parentheses and may hold spaces, so fields are counted after its ')')."""
    fields = contents(f"/proc/{pid}/stat").rpartition(")")[2].split()
    return int(fields[11]) + int(fields[12])


def measure(lab, worker, kind, scale):
    """One kind of client: CLIENTS processes, each sending its share of the requests one after the other."""
    name, port, tls, keep_alive, requests = kind
    share = max(100, int(requests * scale) // CLIENTS)
    count = share * CLIENTS
    before = cpu_ticks(worker)
    clients = [subprocess.Popen(["ip", "netns", "exec", lab.client, "taskset", "-c", str(GENERATOR_CPU), "timeout", "120",
                                 "python3", "-c", CLIENT, GATEWAY_ADDRESS, str(port), "1" if tls else "0",
                                 "1" if keep_alive else "0", str(share)], stdout=subprocess.PIPE, text=True)
               for _ in range(CLIENTS)]
    outputs = [client.communicate(timeout=130)[0] for client in clients]
    ticks = cpu_ticks(worker) - before
    statuses = {}
    for client, output in zip(clients, outputs):
        if client.returncode != 0:
            raise RuntimeError(f"{name}: a client exited {client.returncode}")
        for status, number in json.loads(output.strip().splitlines()[-1])["statuses"].items():
            statuses[status] = statuses.get(status, 0) + number
    rejected = statuses.get("429", 0)
    if rejected < count * 0.99:
        raise RuntimeError(f"{name}: expected 429s, got {statuses}")
    return {"requests": count, "rejected": rejected, "ticks": ticks, "us_per_request": ticks / TICKS_PER_SECOND / count * 1e6}


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--tag", required=True)
    parser.add_argument("--scale", type=float, default=1.0, help="fraction of the default request counts")
    parser.add_argument("--rounds", type=int, default=3)
    options = parser.parse_args()
    exit_on_sigterm()

    samples = {kind[0]: [] for kind in KINDS}
    with Lab(options.tag) as lab:
        make_certificates(lab)
        with Nginx(lab, nginx_http(lab)) as nginx:
            # nginx prints its version on stderr.
            version = subprocess.run(["nginx", "-v"], capture_output=True, text=True).stderr.strip()
            for round in range(1, options.rounds + 1):
                for kind in KINDS:
                    sample = measure(lab, nginx.worker, kind, options.scale)
                    samples[kind[0]].append(sample)
                    log(f"nginx 429, round {round}: {kind[0]}: {sample['requests']} requests, "
                        f"{sample['ticks']} ticks, {sample['us_per_request']:.1f} us each")

    emit({
        "nginx": version,
        "ticks_per_second": TICKS_PER_SECOND,
        "rounds": options.rounds,
        "rows": [{"client": name, "requests": values[0]["requests"],
                  "ticks": [value["ticks"] for value in values],
                  "us_per_request": median([value["us_per_request"] for value in values]),
                  "samples": [value["us_per_request"] for value in values]}
                 for name, values in samples.items()],
    })


if __name__ == "__main__":
    main()
