"""What every lab agent shares: the start signal and the bounds.

An agent is a small program the lab runs inside one of its namespaces (`ip netns exec NS python3
AGENT.py SPEC`). It prepares (builds frames, resolves addresses), prints `ready`, and waits for `go` on its
standard input, so that every agent of a run starts at the same moment. It exits as soon as its input
closes (the lab ending it, or the lab itself gone), and never runs past the deadline in its spec. Its last
line of output is its outcome, as JSON.

    spec = agent.start()          # parses argv[1], prints ready, waits for go
    ...                           # work until spec["seconds"] have passed
    agent.finish({"sent": 42})
"""
import json
import os
import sys
import threading


def start():
    spec = json.loads(sys.argv[1])
    print("ready", flush=True)
    line = sys.stdin.readline()
    if line.strip() != "go":
        os._exit(0)
    # From now on, the input closing means: stop at once.
    threading.Thread(target=lambda: (sys.stdin.read(), os._exit(0)), daemon=True).start()
    return spec


def finish(outcome):
    print(json.dumps(outcome), flush=True)


def percentile(sorted_values, q):
    if not sorted_values:
        return None
    return round(sorted_values[min(len(sorted_values) - 1, int(len(sorted_values) * q))], 1)
