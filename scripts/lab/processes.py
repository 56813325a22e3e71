"""Commands and the lab's agents (agents/*.py) running inside its namespaces.

    flood = Agent.start("flood", namespace="lab-1-atk", spec={...}, cpu=0, cleanup=cleanup)
    flood.go()                  # every agent of a run is started first, then all are told to go
    outcome = flood.outcome()   # waits (bounded) for its JSON outcome

Every process is started in a session of its own and ended by its process-group id, never by name: `ip
netns exec` may fork, and the group takes its child with it. An agent also exits by itself when its input
closes and at the deadline in its spec.
"""
import json
import os
import select
import signal
import subprocess
import time

AGENTS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "agents")


class LabError(Exception):
    """A step of the lab failed; the message names the step."""


def run(arguments, check=True, input_text=None, timeout=60):
    """Runs a command to completion and returns its standard output; raises LabError naming it if it fails."""
    try:
        result = subprocess.run(arguments, input=input_text, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        raise LabError(f"`{' '.join(arguments)}` did not finish within {timeout} s")
    if check and result.returncode != 0:
        raise LabError(f"`{' '.join(arguments)}` failed ({result.returncode}): {result.stderr.strip() or result.stdout.strip()}")
    return result.stdout


def end_group(process, grace=3.0):
    """Ends a process started with start_new_session by its group id: SIGTERM, then SIGKILL."""
    if process.poll() is not None:
        return
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(process.pid, sig)
        except ProcessLookupError:
            return
        try:
            process.wait(grace)
            return
        except subprocess.TimeoutExpired:
            continue
    process.wait(5)


class Agent:
    """One agent process; `start` waits for its `ready` line."""

    def __init__(self, name, process):
        self.name = name
        self.process = process
        self._buffer = b""

    @classmethod
    def start(cls, name, namespace, spec, cleanup, cpu=None):
        arguments = ["ip", "netns", "exec", namespace]
        if cpu is not None:
            arguments += ["taskset", "-c", str(cpu)]
        arguments += ["python3", "-B", "-u", os.path.join(AGENTS, f"{name}.py"), json.dumps(spec)]
        process = subprocess.Popen(arguments, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                   start_new_session=True)
        agent = cls(name, process)
        cleanup.push(f"agent {name} (pid {process.pid})", lambda: end_group(process))
        agent._read_until(lambda b: b"ready\n" in b, 20)
        if b"ready\n" not in agent._buffer:
            agent._fail("never got ready")
        agent._buffer = agent._buffer.split(b"ready\n", 1)[1]
        return agent

    def _read_until(self, done, timeout):
        """Reads the agent's output until `done(everything read)` or its end; False if `timeout` passed first."""
        fd = self.process.stdout.fileno()
        deadline = time.monotonic() + timeout
        while not done(self._buffer):
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            readable, _, _ = select.select([fd], [], [], min(left, 0.2))
            if readable:
                data = os.read(fd, 65536)
                if not data:
                    return True
                self._buffer += data
        return True

    def _fail(self, what):
        end_group(self.process)
        stderr = self.process.stderr.read().decode(errors="replace")
        raise LabError(f"agent {self.name} {what}: {(self._buffer.decode(errors='replace') + stderr).strip()[-400:]}")

    def go(self):
        self.process.stdin.write(b"go\n")
        self.process.stdin.flush()

    def outcome(self, timeout):
        """The agent's JSON outcome, waiting at most `timeout` seconds for it to end; ends it if it overruns."""
        if not self._read_until(lambda b: False, timeout):
            self._fail("overran its time")
        self.process.wait(5)
        try:
            return json.loads(self._buffer.decode().strip().splitlines()[-1])
        except (IndexError, ValueError):
            self._fail("gave no outcome")
