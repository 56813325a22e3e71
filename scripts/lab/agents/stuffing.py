"""Credential stuffing: many /24s, each trying logins on the auth port at its connection rate.

A lab agent (agent.py) in the attacker's namespace; its spec:

    {"host": "192.0.2.1", "port": 8443, "sources": ["100.100.0.2", ...], "burst": 5, "interval": 1.5,
     "seconds": 5}

Each source (one per /24) sends `burst` login attempts at once, then one every `interval` seconds: one
POST /api/v1/auth/login per new TLS connection, as stuffing tools rotating through proxies do. Outcome:
{"attempts", "ok", "limited" (nginx's 429), "refused" (reset by the gateway), "timeouts", "other"}.
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
    start = time.monotonic()
    deadline = start + float(spec["seconds"])
    counts = {"attempts": 0, "ok": 0, "limited": 0, "refused": 0, "timeouts": 0, "other": 0}
    lock = threading.Lock()

    def attempt(source):
        outcome = "other"
        try:
            connection = http.client.HTTPSConnection(spec["host"], spec["port"], context=context,
                                                     timeout=min(2, max(0.05, deadline - time.monotonic() + 1)),
                                                     source_address=(source, 0))
            connection.request("POST", "/api/v1/auth/login", body=b"user=alice&password=hunter2",
                               headers={"Host": "api.example.com", "Content-Type": "application/x-www-form-urlencoded"})
            response = connection.getresponse()
            response.read()
            outcome = {200: "ok", 429: "limited"}.get(response.status, "other")
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

    def source_loop(source):
        for _ in range(int(spec["burst"])):
            if time.monotonic() >= deadline:
                return
            attempt(source)
        k = 1
        while True:
            due = start + k * float(spec["interval"])
            if due >= deadline:
                return
            time.sleep(max(0, due - time.monotonic()))
            attempt(source)
            k += 1

    threads = [threading.Thread(target=source_loop, args=(s,), daemon=True) for s in spec["sources"]]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(max(0, deadline - time.monotonic()) + 3)
    with lock:
        agent.finish(dict(counts))


if __name__ == "__main__":
    main()
