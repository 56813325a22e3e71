#!/usr/bin/python3
"""Checks the conventions promtool does not: Gatewarden's alert rules, their runbooks and their tests.

    /usr/bin/python3 scripts/check_alerts.py

- alerts/*.yml: one group, `gatewarden`; alert names `Gatewarden` + CamelCase; a `for:`; a `severity`
  label of critical, warning or info; annotations summary, description and runbook_url, the URL being
  docs/runbooks.md#<anchor> on GitHub with <anchor> the alert name in lower case;
- docs/runbooks.md has a heading for every such anchor (and none for an alert that does not exist);
- alerts/tests/*.yml: every alert is shown to fire (a non-empty exp_alerts) and to stay quiet
  (an empty exp_alerts) at least once.
Exits 1 naming each problem.
"""

import glob
import os
import re
import sys

import yaml

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RUNBOOK_BASE = "https://github.com/gatewarden/gatewarden/blob/main/docs/runbooks.md#"
SEVERITIES = {"critical", "warning", "info"}
NAME_RE = re.compile(r"Gatewarden(?:[A-Z][a-z0-9]*|[A-Z]+(?=[A-Z][a-z]|$))+")


def github_anchor(heading):
    """The anchor GitHub gives a Markdown heading."""
    text = re.sub(r"[^\w\- ]", "", heading.strip().lower())
    return text.replace(" ", "-")


def main():
    os.chdir(REPO)
    problems = []
    alerts = {}  # name -> list of severities
    rule_files = sorted(glob.glob("alerts/*.yml"))
    if not rule_files:
        problems.append("alerts/: no rule files (*.yml)")
    for path in rule_files:
        with open(path, encoding="utf-8") as f:
            document = yaml.safe_load(f) or {}
        groups = document.get("groups") or []
        if [g.get("name") for g in groups] != ["gatewarden"]:
            problems.append(f"{path}: expected exactly one group, 'gatewarden', found "
                            f"{[g.get('name') for g in groups]}")
        for group in groups:
            for rule in group.get("rules") or []:
                name = rule.get("alert")
                if name is None:
                    continue  # recording rules follow their own naming
                where = f"{path}: alert {name}"
                if not NAME_RE.fullmatch(name):
                    problems.append(f"{where}: name must be 'Gatewarden' followed by CamelCase")
                if not rule.get("for"):
                    problems.append(f"{where}: has no 'for:' (a single bad scrape would page)")
                severity = (rule.get("labels") or {}).get("severity")
                if severity not in SEVERITIES:
                    problems.append(f"{where}: severity label must be one of {sorted(SEVERITIES)}, not {severity!r}")
                alerts.setdefault(name, []).append(severity)
                annotations = rule.get("annotations") or {}
                for key in ("summary", "description", "runbook_url"):
                    if not str(annotations.get(key) or "").strip():
                        problems.append(f"{where}: annotation '{key}' is missing")
                url = annotations.get("runbook_url") or ""
                if url and url != RUNBOOK_BASE + name.lower():
                    problems.append(f"{where}: runbook_url must be {RUNBOOK_BASE + name.lower()}, not {url}")

    runbook_path = "docs/runbooks.md"
    try:
        with open(runbook_path, encoding="utf-8") as f:
            headings = [m.group(1) for m in re.finditer(r"^#{2,3} +(.+?) *$", f.read(), re.M)]
    except OSError as error:
        problems.append(f"{runbook_path}: {error}")
        headings = []
    anchors = {github_anchor(h) for h in headings}
    for name in alerts:
        if name.lower() not in anchors:
            problems.append(f"{runbook_path}: no section '## {name}' (anchor #{name.lower()})")
    for heading in headings:
        if heading.startswith("Gatewarden") and heading not in alerts:
            problems.append(f"{runbook_path}: section '{heading}' has no alert of that name")

    fires, quiet = set(), set()
    test_files = sorted(glob.glob("alerts/tests/*.yml"))
    if not test_files:
        problems.append("alerts/tests/: no promtool test files (*.yml)")
    for path in test_files:
        with open(path, encoding="utf-8") as f:
            document = yaml.safe_load(f) or {}
        for test in document.get("tests") or []:
            for case in test.get("alert_rule_test") or []:
                (fires if case.get("exp_alerts") else quiet).add(case.get("alertname"))
    for name in alerts:
        if name not in fires:
            problems.append(f"alerts/tests: no test shows {name} firing (a non-empty exp_alerts)")
        if name not in quiet:
            problems.append(f"alerts/tests: no test shows {name} staying quiet (exp_alerts: [])")

    if problems:
        for problem in problems:
            print(f"check_alerts: {problem}", file=sys.stderr)
        print(f"check_alerts: FAILED: {len(problems)} problem(s)", file=sys.stderr)
        return 1
    rules = sum(len(v) for v in alerts.values())
    print(f"check_alerts: OK: {len(alerts)} alerts ({rules} rules), each with severity, runbook section, "
          f"and tests that fire and stay quiet")
    return 0


if __name__ == "__main__":
    sys.exit(main())
