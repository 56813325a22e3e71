"""A legitimate HTTPS client: requests at a fixed rate for a fixed time, and how each one fared.

A lab agent (agent.py) in the legitimate client's namespace; its spec:

    {"host": "203.0.113.1", "port": 443, "source": "203.0.113.10", "path": "/",
     "keep_alive": true, "rate": 20, "seconds": 5}

keep_alive: every request on one connection (a new one only after a failure), as a browser or an app
does; otherwise a new TLS connection per request. A request succeeds with a 200 within 3 s; its latency
counts from the moment it was due (not sent), so a stall delays, and is charged to, the requests behind it.
Outcome: {"ok", "failed", "p50_ms", "p99_ms", "errors"} (the first few errors).
"""
import http.client
import ssl
import time

import agent


def main():
    spec = agent.start()
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    rate, seconds = float(spec["rate"]), float(spec["seconds"])
    latencies, failed, errors, connection = [], 0, [], None
    start = time.monotonic()
    for i in range(int(rate * seconds)):
        due = start + i / rate
        delay = due - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        elif delay < -3:
            failed += 1  # too late to be worth sending: the client has given up on it
            continue
        try:
            if connection is None:
                connection = http.client.HTTPSConnection(spec["host"], spec["port"], context=context, timeout=3,
                                                         source_address=(spec["source"], 0))
            connection.request("GET", spec["path"], headers={"Host": "api.example.com"})
            response = connection.getresponse()
            response.read()
            if response.status != 200:
                raise RuntimeError("status %d" % response.status)
            latencies.append((time.monotonic() - due) * 1000)
        except Exception as error:
            failed += 1
            if len(errors) < 5:
                errors.append(repr(error)[:100])
            if connection is not None:
                connection.close()
            connection = None
        if not spec["keep_alive"] and connection is not None:
            connection.close()
            connection = None
    latencies.sort()
    agent.finish({"ok": len(latencies), "failed": failed, "p50_ms": agent.percentile(latencies, 0.5),
                  "p99_ms": agent.percentile(latencies, 0.99), "errors": errors})


if __name__ == "__main__":
    main()
