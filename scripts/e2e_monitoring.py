#!/usr/bin/python3
"""Helpers for scripts/e2e-monitoring.sh (run with Debian's /usr/bin/python3: needs yaml).

    e2e_monitoring.py free-ports N
    e2e_monitoring.py webhook PORT FILE
    e2e_monitoring.py rules-copy SRC DST --for 5s --range 15s
    e2e_monitoring.py traffic --duration S --dst IP --port P --udp-src IP --udp-pps N
                              [--syn-src IP --syn-pps N]
    nft -j list table inet gatewarden | e2e_monitoring.py sized-sets
    e2e_monitoring.py query PROM_URL EXPR
    e2e_monitoring.py wait-query PROM_URL EXPR --timeout S --what TEXT
    e2e_monitoring.py rules-healthy PROM_URL --timeout S
    e2e_monitoring.py quiet PROM_URL
    e2e_monitoring.py wait-alert PROM_URL AM_URL FILE --from-line N --alert NAME
                                 --status firing|resolved --timeout S [--label NAME=VALUE ...]
    e2e_monitoring.py not-fired FILE --from-line N --alert NAME
    e2e_monitoring.py dashboard PROM_URL DASHBOARD.json --set NAME=VALUE ... --exclude TITLE=REASON ...

Every wait polls a few times a second and gives up after its --timeout, naming what did not happen.
Commands that check something print one line per check, `ok: ...` or `FAIL: ...`, and exit 1 if any
check failed.
"""

import argparse
import http.server
import json
import os
import re
import signal
import socket
import sys
import time
import urllib.error
import urllib.parse
import urllib.request

import yaml

POLL_SECONDS = 0.25
HTTP_TIMEOUT = 5


# ------------------------------------------------------------------------------------------ ports

def free_ports(count):
    """`count` distinct loopback ports that were free a moment ago (all bound at once, then released)."""
    sockets = []
    try:
        for _ in range(count):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.bind(("127.0.0.1", 0))
            sockets.append(s)
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


# ---------------------------------------------------------------------------------------- webhook

def serve_webhook(port, path):
    """Appends every POSTed JSON body to `path`, one compact JSON document per line."""

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):  # readiness probe
            self._reply(200, b"ok\n")

        def do_POST(self):
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length)
            try:
                document = json.loads(body)
            except ValueError:
                self._reply(400, b"not JSON\n")
                return
            with open(path, "a", encoding="utf-8") as out:
                out.write(json.dumps(document, separators=(",", ":"), sort_keys=True) + "\n")
            self._reply(200, b"ok\n")

        def _reply(self, status, body):
            self.send_response(status)
            self.send_header("Content-Type", "text/plain")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, fmt, *args):
            sys.stderr.write("webhook: " + (fmt % args) + "\n")

    open(path, "a", encoding="utf-8").close()
    # Single-threaded on purpose: one POST at a time, so lines never interleave.
    server = http.server.HTTPServer(("127.0.0.1", port), Handler)
    server.serve_forever()


def webhook_alerts(path, from_line):
    """(line number, alert) for every alert in the webhook file from line `from_line` (0-based) on."""
    try:
        with open(path, encoding="utf-8") as f:
            lines = f.readlines()
    except FileNotFoundError:
        return []
    found = []
    for number, line in enumerate(lines[from_line:], start=from_line):
        if not line.endswith("\n"):
            break  # still being written
        try:
            document = json.loads(line)
        except ValueError:
            continue
        for alert in document.get("alerts") or []:
            found.append((number, alert))
    return found


# ------------------------------------------------------------------------------------ rules copy

# A range or subquery selector: [5m], [1h30m], [5m:30s], [5m:].
RANGE_RE = re.compile(r"\[\s*(\d+(?:ms|[smhdwy]))+\s*(:\s*(\d+(?:ms|[smhdwy]))*\s*)?\]")


def rules_copy(src, dst, for_duration, range_duration):
    """Writes `src` with every `for:` set to `for_duration` and every range selector to `range_duration`.

    Only durations change. A self-check compares every rule with the original once both have their
    durations blanked out, so anything else changing is an error.
    """
    with open(src, encoding="utf-8") as f:
        original = yaml.safe_load(f)
    with open(src, encoding="utf-8") as f:
        copy = yaml.safe_load(f)

    def shorten(m):
        return f"[{range_duration}:1s]" if m.group(2) is not None else f"[{range_duration}]"

    changed = 0
    for group in copy.get("groups", []):
        for rule in group.get("rules", []):
            if "for" in rule:
                rule["for"] = for_duration
                changed += 1
            if "keep_firing_for" in rule:
                rule["keep_firing_for"] = for_duration
            new_expr, n = RANGE_RE.subn(shorten, str(rule["expr"]))
            rule["expr"] = new_expr
            changed += n

    def blank(document):
        text = json.dumps(document, sort_keys=True)
        for key in ("for", "keep_firing_for"):
            text = re.sub(rf'"{key}": "[^"]*"', f'"{key}": ""', text)
        return RANGE_RE.sub("[]", text)

    if blank(original) != blank(copy):
        raise SystemExit(f"rules-copy: copying {src} changed more than durations")

    header = (f"# Test copy of {os.path.basename(src)} for scripts/e2e-monitoring.sh, generated: ONLY\n"
              f"# durations differ from the original (every `for:` is {for_duration}, every range\n"
              f"# selector [{range_duration}]); thresholds, expressions, labels and annotations are\n"
              f"# unchanged.\n")

    class Dumper(yaml.SafeDumper):
        pass

    def text(dumper, value):  # multi-line expressions as readable `|` blocks
        style = "|" if "\n" in value else None
        return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)

    Dumper.add_representer(str, text)
    with open(dst, "w", encoding="utf-8") as out:
        out.write(header)
        yaml.dump(copy, out, Dumper=Dumper, sort_keys=False, width=1000)
    print(f"rules-copy: {dst}: {changed} durations shortened")


# ---------------------------------------------------------------------------------------- traffic

def traffic(duration, dst, port, udp_src, udp_pps, syn_src, syn_pps):
    """UDP packets from udp_src at udp_pps and TCP SYNs (connection attempts) from syn_src at syn_pps,
    to dst:port, for at most `duration` seconds."""
    stopping = []
    signal.signal(signal.SIGTERM, lambda *_: stopping.append(True))  # stop early, still report
    udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    udp.bind((udp_src, 0))
    payload = b"gatewarden-e2e" * 4
    start = time.monotonic()
    end = start + duration
    sent_udp = sent_syn = 0
    while True:
        now = time.monotonic()
        if now >= end or stopping:
            break
        elapsed = now - start
        # Catch up to the schedule (bounded per round so a stall does not turn into a huge burst).
        for _ in range(min(int(elapsed * udp_pps) - sent_udp, 200)):
            try:
                udp.sendto(payload, (dst, port))
            except OSError:
                pass
            sent_udp += 1
        if syn_src and syn_pps:
            for _ in range(min(int(elapsed * syn_pps) - sent_syn, 50)):
                tcp = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
                tcp.setblocking(False)
                try:
                    tcp.bind((syn_src, 0))
                    tcp.connect_ex((dst, port))  # sends the SYN; nobody listens, the gateway answers RST
                except OSError:
                    pass
                tcp.close()
                sent_syn += 1
        time.sleep(0.005)
    print(f"traffic: sent {sent_udp} UDP packets and {sent_syn} SYNs in {time.monotonic() - start:.1f}s",
          flush=True)


# --------------------------------------------------------------------------------------- nftables

def sized_sets():
    """Reads `nft -j list table ...` on stdin; prints how many sets or meters have a size (a capacity)."""
    document = json.load(sys.stdin)
    count = 0
    for item in document.get("nftables", []):
        for kind in ("set", "map", "meter"):
            if kind in item and int(item[kind].get("size") or 0) > 0:
                count += 1
    print(count)


# ------------------------------------------------------------------------------------- Prometheus

def api(base, path, params=None):
    url = base.rstrip("/") + path
    if params:
        url += "?" + urllib.parse.urlencode(params)
    try:
        with urllib.request.urlopen(url, timeout=HTTP_TIMEOUT) as response:
            return json.load(response)
    except urllib.error.HTTPError as error:
        try:
            return json.load(error)
        except ValueError:
            return {"status": "error", "error": f"HTTP {error.code}"}
    except (urllib.error.URLError, OSError, ValueError) as error:
        return {"status": "error", "error": str(error)}


def instant(prom, expr):
    """(result list, error or None)."""
    answer = api(prom, "/api/v1/query", {"query": expr})
    if answer.get("status") != "success":
        return [], answer.get("error") or "query failed"
    return answer["data"]["result"], None


def describe_series(result):
    parts = []
    for series in result:
        labels = ",".join(f'{k}="{v}"' for k, v in sorted(series.get("metric", {}).items()))
        value = series.get("value", [None, None])[1] if "value" in series else \
            (series.get("values") or [[None, None]])[-1][1]
        parts.append(f"{{{labels}}} {value}")
    return parts


def wait_query(prom, expr, timeout, what):
    deadline = time.monotonic() + timeout
    start = time.monotonic()
    error = None
    while time.monotonic() < deadline:
        result, error = instant(prom, expr)
        if result:
            print(f"ok: {what} (after {time.monotonic() - start:.1f}s)")
            return 0
        time.sleep(POLL_SECONDS)
    detail = f"; last error: {error}" if error else ""
    print(f"FAIL: {what}: not within {timeout:.0f}s ({expr} stayed empty{detail})")
    return 1


def rules_healthy(prom, timeout):
    """Waits until every rule was evaluated at least once, then checks none has an evaluation error."""
    deadline = time.monotonic() + timeout
    rules = []
    while time.monotonic() < deadline:
        answer = api(prom, "/api/v1/rules")
        if answer.get("status") == "success":
            rules = [r for g in answer["data"]["groups"] for r in g["rules"]]
            if rules and all(not r.get("lastEvaluation", "").startswith("0001-") for r in rules):
                bad = [f"{r['name']}: {r.get('lastError')}" for r in rules if r.get("health") != "ok"]
                if bad:
                    print("FAIL: rule evaluation errors: " + "; ".join(bad))
                    return 1
                print(f"ok: Prometheus evaluates all {len(rules)} rules of the test copy without errors")
                return 0
        time.sleep(POLL_SECONDS)
    print(f"FAIL: Prometheus did not evaluate every rule within {timeout:.0f}s ({len(rules)} rules loaded)")
    return 1


def active_alerts(prom, name=None):
    answer = api(prom, "/api/v1/alerts")
    if answer.get("status") != "success":
        return None
    alerts = answer["data"]["alerts"]
    return [a for a in alerts if name is None or a["labels"].get("alertname") == name]


def quiet(prom):
    alerts = active_alerts(prom)
    if alerts is None:
        print("FAIL: cannot read Prometheus's alerts")
        return 1
    if alerts:
        listed = ", ".join(f"{a['labels'].get('alertname')} ({a['state']})" for a in alerts)
        print(f"FAIL: alerts active on a healthy, idle gateway: {listed}")
        return 1
    print("ok: no alert pending or firing on the healthy, idle gateway")
    return 0


def annotation_problems(annotations):
    """What is wrong with an alert's annotations as Alertmanager delivered them (templates expanded)."""
    problems = []
    for key in ("summary", "description", "runbook_url"):
        if not str(annotations.get(key, "")).strip():
            problems.append(f"{key} is empty")
    for key, value in annotations.items():
        for marker in ("<no value>", "error executing template", "error expanding template", "{{"):
            if marker in str(value):
                problems.append(f"{key} contains {marker!r}: {value}")
    return problems


def wait_alert(prom, am, path, from_line, name, status, timeout, labels=None):
    """Waits for an alert `name` with `status` (and `labels`, if given) in the webhook file."""
    wanted = dict(labels or {}, alertname=name)
    shown = name + (json.dumps(labels, sort_keys=True) if labels else "")
    deadline = time.monotonic() + timeout
    start = time.monotonic()
    while time.monotonic() < deadline:
        for number, alert in webhook_alerts(path, from_line):
            got = alert.get("labels", {})
            if all(got.get(k) == v for k, v in wanted.items()) and alert.get("status") == status:
                labels = {k: v for k, v in alert["labels"].items() if k != "alertname"}
                print(f"ok: {shown} reached the webhook as {status} after {time.monotonic() - start:.1f}s "
                      f"(line {number + 1}, labels {json.dumps(labels, sort_keys=True)})")
                problems = annotation_problems(alert.get("annotations") or {})
                if problems:
                    print(f"FAIL: {name} ({status}) annotations: {'; '.join(problems)}")
                    return 1
                return 0
        time.sleep(POLL_SECONDS)
    # Where it got stuck: Prometheus (pending / not active), Alertmanager, or the webhook.
    in_prom = active_alerts(prom, name)
    prom_state = "unknown" if in_prom is None else (", ".join(a["state"] for a in in_prom) or "inactive")
    am_answer = []
    try:
        with urllib.request.urlopen(am.rstrip("/") + "/api/v2/alerts", timeout=HTTP_TIMEOUT) as response:
            am_answer = [a for a in json.load(response) if a["labels"].get("alertname") == name]
    except (urllib.error.URLError, OSError, ValueError):
        pass
    am_state = ", ".join(a["status"]["state"] for a in am_answer) or "none"
    seen = sorted({f"{a.get('labels', {}).get('alertname')}={a.get('status')}"
                   for _, a in webhook_alerts(path, from_line)})
    print(f"FAIL: {shown} did not reach the webhook as {status} within {timeout:.0f}s "
          f"(Prometheus: {prom_state}; Alertmanager: {am_state}; webhook since the phase began: "
          f"{', '.join(seen) or 'nothing'})")
    return 1


def not_fired(path, from_line, name):
    hits = [number for number, alert in webhook_alerts(path, from_line)
            if alert.get("labels", {}).get("alertname") == name and alert.get("status") == "firing"]
    if hits:
        print(f"FAIL: {name} reached the webhook as firing (line {hits[0] + 1}) but should have stayed quiet")
        return 1
    print(f"ok: {name} stayed quiet")
    return 0


# -------------------------------------------------------------------------------------- dashboard

VARIABLE_RE = re.compile(r"\$\{([A-Za-z_]\w*)(?::[\w-]+)?\}|\$([A-Za-z_]\w*)")


def all_panels(panels):
    for panel in panels:
        yield panel
        yield from all_panels(panel.get("panels") or [])


def dashboard(prom, path, settings, excludes):
    with open(path, encoding="utf-8") as f:
        board = json.load(f)

    def substitute(expr):
        def value(m):
            name = m.group(1) or m.group(2)
            if name not in settings:
                raise KeyError(m.group(0))
            return settings[name]
        return VARIABLE_RE.sub(value, expr)

    failures = passes = 0

    # Template variables: label_values(SELECTOR, LABEL) must list something.
    for variable in board.get("templating", {}).get("list", []):
        query = variable.get("query")
        if isinstance(query, dict):
            query = query.get("query")
        if variable.get("type") != "query" or not isinstance(query, str):
            continue
        m = re.fullmatch(r"\s*label_values\((.*),\s*(\w+)\s*\)\s*", query)
        if not m:
            print(f"FAIL: variable {variable['name']}: cannot run query {query!r}")
            failures += 1
            continue
        try:
            selector = substitute(m.group(1))
        except KeyError as error:
            print(f"FAIL: variable {variable['name']}: no value for {error}")
            failures += 1
            continue
        answer = api(prom, f"/api/v1/label/{m.group(2)}/values", {"match[]": selector})
        values = answer.get("data") or []
        if answer.get("status") == "success" and values:
            print(f"ok: variable {variable['name']} lists {values}")
            passes += 1
        else:
            print(f"FAIL: variable {variable['name']}: {query} lists nothing "
                  f"({answer.get('error') or 'empty'})")
            failures += 1

    seen_excluded = set()
    now = time.time()
    for panel in all_panels(board.get("panels") or []):
        targets = [t for t in panel.get("targets") or [] if t.get("expr") and not t.get("hide")]
        if not targets:
            continue
        title = panel.get("title", "")
        where = f"panel {panel.get('id')} '{title}'"
        for target in targets:
            name = f"{where} {target.get('refId', '')}".rstrip()
            try:
                expr = substitute(target["expr"])
            except KeyError as error:
                print(f"FAIL: {name}: no value for variable {error}")
                failures += 1
                continue
            # As Grafana asks: instant queries for instant targets, range queries otherwise.
            if target.get("instant") and not target.get("range"):
                answer = api(prom, "/api/v1/query", {"query": expr, "time": f"{now:.3f}"})
            else:
                answer = api(prom, "/api/v1/query_range",
                             {"query": expr, "start": f"{now - 30:.3f}", "end": f"{now:.3f}", "step": "1"})
            if answer.get("status") != "success":
                print(f"FAIL: {name}: query error {answer.get('error')}: {expr}")
                failures += 1
                continue
            result = answer["data"]["result"]
            if title in excludes:
                seen_excluded.add(title)
                if result:
                    print(f"FAIL: {name}: excluded ({excludes[title]}) but returns data now: "
                          f"drop the exclusion")
                    failures += 1
                else:
                    print(f"ok: {name}: empty as expected ({excludes[title]})")
                    passes += 1
                continue
            if not result:
                print(f"FAIL: {name}: no data: {expr}")
                failures += 1
                continue
            shown = describe_series(result)
            more = f" (+{len(shown) - 3} more)" if len(shown) > 3 else ""
            print(f"ok: {name}: {len(result)} series: {'; '.join(shown[:3])}{more}")
            passes += 1
    for title in sorted(set(excludes) - seen_excluded):
        print(f"FAIL: exclusion for panel '{title}' matches no panel with queries")
        failures += 1
    print(f"dashboard: {passes} passed, {failures} failed")
    return 1 if failures else 0


# ------------------------------------------------------------------------------------------- main

def main():
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("free-ports")
    p.add_argument("count", type=int)

    p = sub.add_parser("webhook")
    p.add_argument("port", type=int)
    p.add_argument("file")

    p = sub.add_parser("rules-copy")
    p.add_argument("src")
    p.add_argument("dst")
    p.add_argument("--for", dest="for_duration", required=True)
    p.add_argument("--range", dest="range_duration", required=True)

    p = sub.add_parser("traffic")
    p.add_argument("--duration", type=float, required=True)
    p.add_argument("--dst", required=True)
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--udp-src", required=True)
    p.add_argument("--udp-pps", type=int, required=True)
    p.add_argument("--syn-src")
    p.add_argument("--syn-pps", type=int, default=0)

    sub.add_parser("sized-sets")

    p = sub.add_parser("query")
    p.add_argument("prom")
    p.add_argument("expr")

    p = sub.add_parser("wait-query")
    p.add_argument("prom")
    p.add_argument("expr")
    p.add_argument("--timeout", type=float, required=True)
    p.add_argument("--what", required=True)

    p = sub.add_parser("rules-healthy")
    p.add_argument("prom")
    p.add_argument("--timeout", type=float, required=True)

    p = sub.add_parser("quiet")
    p.add_argument("prom")

    p = sub.add_parser("wait-alert")
    p.add_argument("prom")
    p.add_argument("am")
    p.add_argument("file")
    p.add_argument("--from-line", type=int, required=True)
    p.add_argument("--alert", required=True)
    p.add_argument("--status", choices=("firing", "resolved"), required=True)
    p.add_argument("--timeout", type=float, required=True)
    p.add_argument("--label", action="append", default=[], metavar="NAME=VALUE")

    p = sub.add_parser("not-fired")
    p.add_argument("file")
    p.add_argument("--from-line", type=int, required=True)
    p.add_argument("--alert", required=True)

    p = sub.add_parser("dashboard")
    p.add_argument("prom")
    p.add_argument("file")
    p.add_argument("--set", action="append", default=[], metavar="NAME=VALUE")
    p.add_argument("--exclude", action="append", default=[], metavar="TITLE=REASON")

    args = parser.parse_args()
    if args.command == "free-ports":
        print(" ".join(str(port) for port in free_ports(args.count)))
    elif args.command == "webhook":
        serve_webhook(args.port, args.file)
    elif args.command == "rules-copy":
        rules_copy(args.src, args.dst, args.for_duration, args.range_duration)
    elif args.command == "traffic":
        traffic(args.duration, args.dst, args.port, args.udp_src, args.udp_pps, args.syn_src, args.syn_pps)
    elif args.command == "sized-sets":
        sized_sets()
    elif args.command == "query":
        result, error = instant(args.prom, args.expr)
        if error:
            print(f"query error: {error}", file=sys.stderr)
            return 1
        for line in describe_series(result):
            print(line)
    elif args.command == "wait-query":
        return wait_query(args.prom, args.expr, args.timeout, args.what)
    elif args.command == "rules-healthy":
        return rules_healthy(args.prom, args.timeout)
    elif args.command == "quiet":
        return quiet(args.prom)
    elif args.command == "wait-alert":
        labels = dict(label.split("=", 1) for label in args.label)
        return wait_alert(args.prom, args.am, args.file, args.from_line, args.alert, args.status,
                          args.timeout, labels)
    elif args.command == "not-fired":
        return not_fired(args.file, args.from_line, args.alert)
    elif args.command == "dashboard":
        settings = dict(s.split("=", 1) for s in args.set)
        excludes = dict(e.split("=", 1) for e in args.exclude)
        return dashboard(args.prom, args.file, settings, excludes)
    return 0


if __name__ == "__main__":
    sys.exit(main())
