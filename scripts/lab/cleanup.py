"""Undo actions for everything the lab makes, run once, newest first, whatever ends the run.

    cleanup = Cleanup()
    cleanup.push("namespace lab-1-gw", lambda: run(["ip", "netns", "del", "lab-1-gw"]))
    ...
    problems = cleanup.run()    # at exit, on Ctrl-C or SIGTERM, after a failure

An action that fails is reported and the rest still run: one stuck process must not leave a namespace
behind. While the actions run, Ctrl-C and SIGTERM are ignored, so that a second Ctrl-C cannot cut the
cleanup short.
"""
import signal


class Cleanup:
    def __init__(self):
        self._actions = []
        self._ran = False

    def push(self, what, action):
        """Registers `action` (no arguments), described as `what` in a failure report."""
        self._actions.append((what, action))

    def run(self):
        """Runs every action once, newest first; returns a description of each one that failed."""
        if self._ran:
            return []
        self._ran = True
        previous = {s: signal.signal(s, signal.SIG_IGN) for s in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)}
        problems = []
        try:
            while self._actions:
                what, action = self._actions.pop()
                try:
                    action()
                except Exception as error:  # report, and go on with the rest
                    problems.append(f"{what}: {error}")
        finally:
            for s, handler in previous.items():
                signal.signal(s, handler)
        return problems
