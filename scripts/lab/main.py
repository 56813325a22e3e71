"""Gatewarden's attack lab: real attacks against a real nginx, without and with Gatewarden.

    scripts/lab.sh [--seconds N] [--json] [--check] [--svg FILE] [SCENARIO ...]

Builds a gateway namespace running nginx with the companion config (deploy/nginx/) and two client
namespaces (an attacker's, and the legitimate clients'), replays each scenario once without and once with
Gatewarden, and prints per run what was sent, what XDP dropped, what nftables dropped or reset, what
reached the gateway's stack and nginx, nginx's CPU, and how the legitimate clients fared. Draws the
per-layer rates over time as one SVG. Removes everything it made, also on Ctrl-C and on failure.

--check turns the scenarios' assertions into the exit status (1, naming each failed assertion): the
legitimate clients succeed >= 99% in every scenario with Gatewarden, the single-source flood is >= 99%
dropped at XDP above its limit, the distributed /24s are held to their limit +-10%, and nothing is left
behind.
"""
import argparse
import json
import os
import signal
import sys
import time

from cleanup import Cleanup
from processes import LabError
from report import for_json, table
from runner import Lab
from scenarios import BY_NAME, SCENARIOS
from svg import render

REPOSITORY = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
LEGIT_MINIMUM_PERCENT = 99.0


def arguments():
    parser = argparse.ArgumentParser(prog="scripts/lab.sh", description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter,
                                     epilog="scenarios:\n" + "\n".join(f"  {s.name:<20} {s.sends}" for s in SCENARIOS))
    parser.add_argument("scenarios", nargs="*", metavar="SCENARIO", help="scenarios to run (default: all)")
    parser.add_argument("--seconds", type=float, default=10, help="length of each run (default 10)")
    parser.add_argument("--json", action="store_true", help="print the results as a JSON list instead of the table")
    parser.add_argument("--check", action="store_true", help="exit 1 naming each failed assertion")
    parser.add_argument("--svg", help="where to write the picture (default: a new file in the temporary folder)")
    parser.add_argument("--binary", default=os.environ.get("GATEWARDEN_BIN", os.path.join(REPOSITORY, ".build/release/gatewarden")),
                        help="the gatewarden binary (default: $GATEWARDEN_BIN, else .build/release/gatewarden)")
    options = parser.parse_args()
    unknown = [name for name in options.scenarios if name not in BY_NAME]
    if unknown:
        parser.error(f"unknown scenario {', '.join(unknown)} (known: {', '.join(BY_NAME)})")
    if not 1 <= options.seconds <= 600:
        parser.error("--seconds must be between 1 and 600")
    if not os.access(options.binary, os.X_OK):
        parser.error(f"no gatewarden binary at {options.binary} (build it, or set GATEWARDEN_BIN)")
    return options


def leftovers(tag, folder):
    """What the lab left behind: namespaces, pins, processes naming it, its folder."""
    found = []
    namespaces = os.listdir("/run/netns") if os.path.isdir("/run/netns") else []
    found += [f"namespace {n}" for n in namespaces if n.startswith(f"lab-{tag}-")]
    pins = "/sys/fs/bpf/gatewarden/netns"
    if os.path.isdir(pins):
        found += [f"pins {pins}/{n}" for n in os.listdir(pins) if n.startswith(f"lab-{tag}-")]
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            command = open(f"/proc/{pid}/cmdline", "rb").read().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if int(pid) != os.getpid() and (f"lab-{tag}-" in command or (folder and folder in command)):
            found.append(f"process {pid}: {command[:80]}")
    if folder and os.path.exists(folder):
        found.append(f"folder {folder}")
    return found


def interrupted(signum, frame):
    raise KeyboardInterrupt


def main():
    options = arguments()
    if os.geteuid() != 0:
        print("lab: needs root (network namespaces, XDP, nftables)", file=sys.stderr)
        return 2
    signal.signal(signal.SIGTERM, interrupted)
    signal.signal(signal.SIGHUP, interrupted)
    scenarios = [BY_NAME[n] for n in options.scenarios] or SCENARIOS
    seconds = options.seconds
    say = lambda text: print(text, file=sys.stderr if options.json else sys.stdout, flush=True)
    cleanup = Cleanup()
    results, failures, status, folder = [], [], 0, None
    began = time.monotonic()
    try:
        # Every process the lab starts is bounded: the namespace holders by the longest the lab can take.
        lab = Lab(options.binary, REPOSITORY, cleanup, seconds, hold_seconds=int(len(scenarios) * 2 * (seconds + 60) + 120))
        folder = lab.folder
        say(f"lab: building the gateway ({lab.network.gateway}: nginx with deploy/nginx/, Gatewarden on "
            f"{lab.network.attack_link.gateway_interface} and {lab.network.user_link.gateway_interface}), the attacker "
            f"({lab.network.attacker}) and the legitimate clients ({lab.network.users})")
        lab.build(scenarios)
        for scenario in scenarios:
            say(f"lab: {scenario.name}: {scenario.sends}; {seconds:g} s without, then with Gatewarden")
            for protected in (False, True):
                results.append(lab.run(scenario, protected))
    except KeyboardInterrupt:
        say("lab: interrupted; removing everything")
        status = 130
    except LabError as error:
        print(f"lab: {error}", file=sys.stderr)
        status = 2
    finally:
        problems = cleanup.run()
    for problem in problems:
        print(f"lab: cleanup: {problem}", file=sys.stderr)
    left = leftovers(os.getpid(), folder)
    for item in left:
        failures.append(f"left behind: {item}")

    if results:
        if options.json:
            print(json.dumps(for_json(results), indent=2))
        else:
            print()
            print(table(results))
            print()
        svg_path = options.svg or os.path.join(os.environ.get("TMPDIR", "/tmp"),
                                               time.strftime("gatewarden-lab-%Y%m%d-%H%M%S.svg"))
        with open(svg_path, "w") as f:
            f.write(render(results))
        say(f"lab: picture of offered and passed traffic per layer: {svg_path}")
    for result in results:
        if not result["gatewarden"]:
            continue
        if result["legit_success_percent"] < LEGIT_MINIMUM_PERCENT:
            failures.append(f"{result['scenario']}: the legitimate clients succeeded {result['legit_success_percent']}% "
                            f"with Gatewarden (want >= {LEGIT_MINIMUM_PERCENT:g}%): {result['legit_errors']}")
        check = BY_NAME[result["scenario"]].check
        if check:
            failures += check(result)
            if result.get("check_detail"):
                say(f"lab: {result['scenario']}: {result['check_detail']}")
    say(f"lab: {len(results)} runs in {time.monotonic() - began:.0f} s; "
        + ("nothing left behind" if not left else f"{len(left)} things left behind"))
    if options.check:
        for failure in failures:
            print(f"lab: check failed: {failure}", file=sys.stderr)
        if failures and status == 0:
            status = 1
        if not failures and status == 0:
            say("lab: every check passed")
    elif left and status == 0:
        for item in left:
            print(f"lab: left behind: {item}", file=sys.stderr)
        status = 1
    return status


if __name__ == "__main__":
    sys.exit(main())
