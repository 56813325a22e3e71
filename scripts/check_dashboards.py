#!/usr/bin/python3
"""Checks Gatewarden's Grafana dashboards: structure rules, then every query parsed as PromQL.

    /usr/bin/python3 scripts/check_dashboards.py [DASHBOARD.json ...]   (default: dashboards/*.json)

Structure, per dashboard:
  - uid (unique across the files), title, schemaVersion >= 36 (Grafana 9.4+; Grafana 10 writes 37-39);
  - template variables: `datasource` (type datasource, query prometheus); `job` and `instance`
    (type query, multi-select, includeAll with allValue `.+`, label_values(...) queries through the
    datasource variable, the instance query filtered by $job);
  - every panel (rows excepted, also those nested in collapsed rows): a title, a description, a unit
    (fieldConfig.defaults.unit), the datasource variable as its data source (and its targets'), an id
    unique in the dashboard, a gridPos;
  - every query: each series selector filters job=~"$job" and instance=~"$instance"; every rate(),
    irate() and increase() takes [$__rate_interval]; no unknown $variables.
Parsing: the queries, variables substituted ($job, $instance -> .+, $__rate_interval -> 1m, $__range -> 1h,
...), become recording rules in a temporary file that `promtool check rules` must accept; the queries
of label_values(...) and query_result(...) variables too.

Exits 1 naming the dashboard, the panel and the problem; 0 with one summary line when all is well.
"""

import glob
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile

import yaml

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DATASOURCE_REFS = {"${datasource}", "$datasource"}
NO_QUERY_PANEL_TYPES = {"text", "news", "dashlist", "alertlist", "annolist", "welcome"}
RATE_FUNCTIONS = {"rate", "irate", "increase"}
# Grafana's built-in variables as a query would see them.
BUILTIN_VARIABLES = {
    "__rate_interval": "1m",
    "__interval": "1m",
    "__interval_ms": "60000",
    "__range": "1h",
    "__range_s": "3600",
    "__range_ms": "3600000",
}
KEYWORDS = {"and", "or", "unless", "bool", "offset", "inf", "nan", "atan2"}
LABEL_LIST_KEYWORDS = {"by", "without", "on", "ignoring", "group_left", "group_right"}
# Keywords in PromQL: `sum by (a) (...)` puts `by` between the operator and its parenthesis.
AGGREGATIONS = {"sum", "min", "max", "avg", "group", "stddev", "stdvar", "count", "count_values",
                "bottomk", "topk", "quantile"}
# `${name}`, `${name:format}` and `$name`; `$1` (label_replace) is not a variable.
VARIABLE_RE = re.compile(r"\$\{([A-Za-z_]\w*)(?::[\w-]+)?\}|\$([A-Za-z_]\w*)")
MATCHER_RE = re.compile(
    r"""\s*([A-Za-z_][A-Za-z0-9_]*)\s*(=~|!~|!=|=)\s*("(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'|`[^`]*`)\s*(,|$)""")


class Problems:
    def __init__(self):
        self.items = []

    def add(self, where, message):
        self.items.append(f"{where}: {message}")


# ------------------------------------------------------------------------------------- PromQL lexing

def tokenize(expr):
    """A small PromQL lexer: enough to find series selectors, function calls and ranges.

    Yields (kind, text) with kind one of: ident, matchers (the text inside {}), range (inside []),
    string, number, variable, punct.
    """
    tokens = []
    i, n = 0, len(expr)
    while i < n:
        c = expr[i]
        if c.isspace():
            i += 1
        elif c == "#":
            while i < n and expr[i] != "\n":
                i += 1
        elif c in "\"'`":
            j = i + 1
            while j < n and expr[j] != c:
                j += 2 if expr[j] == "\\" and c != "`" else 1
            tokens.append(("string", expr[i:j + 1]))
            i = j + 1
        elif c in "{[":
            close = "}" if c == "{" else "]"
            j = i + 1
            while j < n and expr[j] != close:
                if expr[j] in "\"'`":
                    quote = expr[j]
                    j += 1
                    while j < n and expr[j] != quote:
                        j += 2 if expr[j] == "\\" and quote != "`" else 1
                j += 1
            if j >= n:
                raise ValueError(f"unclosed '{c}'")
            tokens.append(("matchers" if c == "{" else "range", expr[i + 1:j]))
            i = j + 1
        elif c == "$":
            m = VARIABLE_RE.match(expr, i)
            if m:
                tokens.append(("variable", m.group(0)))
                i = m.end()
            else:
                tokens.append(("punct", c))
                i += 1
        elif c.isalpha() or c in "_:":
            m = re.compile(r"[A-Za-z_:][A-Za-z0-9_:]*").match(expr, i)
            tokens.append(("ident", m.group(0)))
            i = m.end()
        elif c.isdigit() or (c == "." and i + 1 < n and expr[i + 1].isdigit()):
            m = re.compile(r"[0-9.][0-9A-Za-z_.]*").match(expr, i)
            tokens.append(("number", m.group(0)))
            i = m.end()
        else:
            tokens.append(("punct", c))
            i += 1
    return tokens


def matching_paren(tokens, open_index):
    depth = 0
    for k in range(open_index, len(tokens)):
        if tokens[k] == ("punct", "("):
            depth += 1
        elif tokens[k] == ("punct", ")"):
            depth -= 1
            if depth == 0:
                return k
    raise ValueError("unbalanced parentheses")


def variable_matcher_ok(matchers, label):
    """Whether the matchers hold `label=~"$label"` (or `${label}`, `${label:format}`)."""
    accepted = {f"${label}", f"${{{label}}}", f"${{{label}:regex}}", f"${{{label}:pipe}}"}
    pos = 0
    found = False
    while pos < len(matchers):
        m = MATCHER_RE.match(matchers, pos)
        if not m:
            if matchers[pos:].strip():
                raise ValueError(f"cannot read label matchers {{{matchers}}}")
            break
        name, op, value = m.group(1), m.group(2), m.group(3)[1:-1]
        if name == label and op == "=~" and value in accepted:
            found = True
        pos = m.end()
    return found


def query_problems(expr, variables):
    """Structure problems of one panel query (list of strings)."""
    problems = []
    try:
        tokens = tokenize(expr)
    except ValueError as error:
        return [f"cannot read query ({error}): {expr}"]

    # Series selectors must filter on both dashboard variables.
    k = 0
    while k < len(tokens):
        kind, text = tokens[k]
        following = tokens[k + 1] if k + 1 < len(tokens) else None
        if kind == "ident":
            lowered = text.lower()
            if lowered in LABEL_LIST_KEYWORDS:
                if following == ("punct", "("):
                    k = matching_paren(tokens, k + 1)
            elif lowered in KEYWORDS or lowered in AGGREGATIONS:
                pass
            elif following == ("punct", "("):
                pass  # a function or aggregation
            else:
                matchers = following[1] if following and following[0] == "matchers" else None
                if matchers is None:
                    problems.append(f"series selector '{text}' has no label matchers: "
                                    f"add {{job=~\"$job\", instance=~\"$instance\"}}")
                else:
                    try:
                        for label in ("job", "instance"):
                            if not variable_matcher_ok(matchers, label):
                                problems.append(f"series selector '{text}{{{matchers}}}' does not filter "
                                                f"{label}=~\"${label}\"")
                    except ValueError as error:
                        problems.append(str(error))
                    k += 1
        elif kind == "matchers":
            # A selector without a metric name, e.g. {__name__=~"..."}.
            for label in ("job", "instance"):
                if not variable_matcher_ok(text, label):
                    problems.append(f"series selector '{{{text}}}' does not filter {label}=~\"${label}\"")
        k += 1

    # rate(), irate() and increase() over $__rate_interval.
    for k, (kind, text) in enumerate(tokens):
        if kind == "ident" and text in RATE_FUNCTIONS and k + 1 < len(tokens) and tokens[k + 1] == ("punct", "("):
            end = matching_paren(tokens, k + 1)
            depth = 0
            ranges = []
            for inner in tokens[k + 2:end]:
                if inner == ("punct", "("):
                    depth += 1
                elif inner == ("punct", ")"):
                    depth -= 1
                elif inner[0] == "range" and depth == 0:
                    ranges.append(inner[1].strip())
            if not ranges:
                problems.append(f"{text}() has no range")
            for window in ranges:
                if window.split(":")[0].strip() not in ("$__rate_interval", "${__rate_interval}"):
                    problems.append(f"{text}() uses [{window}]: use [$__rate_interval]")

    # Variables must exist.
    for m in VARIABLE_RE.finditer(expr):
        name = m.group(1) or m.group(2)
        if name not in variables and name not in BUILTIN_VARIABLES:
            problems.append(f"unknown variable '{m.group(0)}'")
    return problems


def substitute(expr, variables):
    """The query as Prometheus would receive it, with every selection set to 'All'."""
    def value(m):
        name = m.group(1) or m.group(2)
        if name in BUILTIN_VARIABLES:
            return BUILTIN_VARIABLES[name]
        return variables.get(name, m.group(0))
    return VARIABLE_RE.sub(value, expr)


# ------------------------------------------------------------------------------------- dashboards

def datasource_ref(value):
    if isinstance(value, dict):
        return value.get("uid")
    return value


def variable_values(dashboard):
    """What each template variable is replaced with when parsing queries."""
    values = {}
    for variable in dashboard.get("templating", {}).get("list", []):
        name = variable.get("name")
        if not name:
            continue
        kind = variable.get("type")
        current = (variable.get("current") or {}).get("value")
        if isinstance(current, list):
            current = current[0] if current else None
        if kind == "query" or variable.get("includeAll"):
            values[name] = variable.get("allValue") or ".+"
        elif kind == "interval":
            values[name] = "1m"
        elif kind == "datasource":
            values[name] = name
        elif current and current != "$__all":
            values[name] = str(current)
        else:
            values[name] = str(variable.get("query") or ".+").split(",")[0]
    return values


def check_variables(dashboard, where, problems, parse_queue):
    variables = {v.get("name"): v for v in dashboard.get("templating", {}).get("list", []) if v.get("name")}

    datasource = variables.get("datasource")
    if datasource is None:
        problems.add(where, "template variable 'datasource' is missing")
    elif datasource.get("type") != "datasource" or datasource.get("query") != "prometheus":
        problems.add(where, "template variable 'datasource' must have type 'datasource' and query 'prometheus'")

    for name in ("job", "instance"):
        variable = variables.get(name)
        if variable is None:
            problems.add(where, f"template variable '{name}' is missing")
            continue
        here = f"{where}: variable '{name}'"
        if variable.get("type") != "query":
            problems.add(here, "must have type 'query'")
        if variable.get("multi") is not True:
            problems.add(here, "must be multi-select (multi: true)")
        if variable.get("includeAll") is not True:
            problems.add(here, "must include 'All' (includeAll: true)")
        if variable.get("allValue") != ".+":
            problems.add(here, f"allValue must be '.+', not {variable.get('allValue')!r}")
        if datasource_ref(variable.get("datasource")) not in DATASOURCE_REFS:
            problems.add(here, "must query through the ${datasource} variable")
        query = variable.get("query")
        if isinstance(query, dict):
            query = query.get("query")
        if not isinstance(query, str) or not query.strip():
            problems.add(here, "has no query")
            continue
        m = re.fullmatch(r"\s*label_values\(\s*(.*?)\s*,\s*([A-Za-z_]\w*)\s*\)\s*", query)
        if not m or m.group(2) != name:
            problems.add(here, f"query must be label_values(<selector>, {name}), not {query!r}")
        elif m.group(1):
            parse_queue.append((f"{here} query", m.group(1)))
        if name == "instance" and not re.search(r"job=~\"\$(job|\{job\})\"", query):
            problems.add(here, "query must filter job=~\"$job\" so the list follows the job selection")

    for name, variable in variables.items():
        if name in ("datasource", "job", "instance"):
            continue
        query = variable.get("query")
        if isinstance(query, dict):
            query = query.get("query")
        if variable.get("type") == "query" and isinstance(query, str):
            m = re.fullmatch(r"\s*(?:label_values\(\s*(.*?)\s*,\s*\w+\s*\)|query_result\((.*)\))\s*", query, re.S)
            if m and (m.group(1) or m.group(2)):
                parse_queue.append((f"{where}: variable '{name}' query", m.group(1) or m.group(2)))


def all_panels(panels):
    for panel in panels or []:
        yield panel
        if panel.get("type") == "row":
            yield from all_panels(panel.get("panels"))


def check_panels(dashboard, where, problems, parse_queue, counts):
    names = {v.get("name") for v in dashboard.get("templating", {}).get("list", []) if v.get("name")}
    seen_ids = {}
    for panel in all_panels(dashboard.get("panels")):
        title = panel.get("title") or ""
        here = f"{where}: panel {title!r}" if title else f"{where}: panel id {panel.get('id')}"
        panel_id = panel.get("id")
        if panel_id is None:
            problems.add(here, "has no id")
        elif panel_id in seen_ids:
            problems.add(here, f"id {panel_id} is also used by panel {seen_ids[panel_id]!r}")
        else:
            seen_ids[panel_id] = title
        grid = panel.get("gridPos") or {}
        if not all(isinstance(grid.get(key), int) for key in ("h", "w", "x", "y")):
            problems.add(here, "gridPos must give integer h, w, x and y")
        elif grid["x"] + grid["w"] > 24:
            problems.add(here, "gridPos reaches past the 24-column grid")
        if panel.get("type") == "row":
            continue
        if "libraryPanel" in panel:
            problems.add(here, "library panels cannot be checked: inline the panel")
            continue
        counts["panels"] += 1
        if not title.strip():
            problems.add(here, "has no title")
        if not str(panel.get("description") or "").strip():
            problems.add(here, "has no description")
        targets = panel.get("targets") or []
        if panel.get("type") in NO_QUERY_PANEL_TYPES and not targets:
            continue
        unit = ((panel.get("fieldConfig") or {}).get("defaults") or {}).get("unit")
        if not str(unit or "").strip():
            problems.add(here, "has no unit (fieldConfig.defaults.unit)")
        if datasource_ref(panel.get("datasource")) not in DATASOURCE_REFS:
            problems.add(here, f"data source must be ${{datasource}}, not {panel.get('datasource')!r}")
        if not targets:
            problems.add(here, "has no queries")
        for target in targets:
            ref = target.get("refId", "?")
            there = f"{here} query {ref}"
            if "datasource" in target and datasource_ref(target["datasource"]) not in DATASOURCE_REFS:
                problems.add(there, f"data source must be ${{datasource}}, not {target['datasource']!r}")
            expr = target.get("expr")
            if not isinstance(expr, str) or not expr.strip():
                problems.add(there, "has no PromQL expression (expr)")
                continue
            counts["queries"] += 1
            for problem in query_problems(expr, names):
                problems.add(there, problem)
            parse_queue.append((there, expr))


def check_dashboard(path, problems, parse_queue, counts, uids):
    where = path
    if os.path.isabs(path) and os.path.abspath(path).startswith(os.getcwd() + os.sep):
        where = os.path.relpath(path)
    try:
        with open(path, encoding="utf-8") as f:
            dashboard = json.load(f)
    except (OSError, ValueError) as error:
        problems.add(where, f"cannot read JSON: {error}")
        return
    if not isinstance(dashboard, dict):
        problems.add(where, "is not a JSON object")
        return
    counts["dashboards"] += 1
    # An export wrapped for the HTTP API ({"dashboard": {...}}) is not importable as a file.
    if "dashboard" in dashboard and "panels" not in dashboard:
        problems.add(where, "is wrapped in {\"dashboard\": ...}: store the dashboard model itself")
        return
    uid = dashboard.get("uid")
    if not uid:
        problems.add(where, "has no uid")
    elif uid in uids:
        problems.add(where, f"uid {uid!r} is also used by {uids[uid]}")
    else:
        uids[uid] = where
    if not str(dashboard.get("title") or "").strip():
        problems.add(where, "has no title")
    schema = dashboard.get("schemaVersion")
    if not isinstance(schema, int) or schema < 36:
        problems.add(where, f"schemaVersion must be 36 or later (Grafana 10 writes 37-39), not {schema!r}")
    if dashboard.get("id") not in (None,):
        problems.add(where, "id must be null so the dashboard imports into any Grafana")
    check_variables(dashboard, where, problems, parse_queue)
    check_panels(dashboard, where, problems, parse_queue, counts)
    values = variable_values(dashboard)
    parse_queue[:] = [(there, substitute(expr, values)) for there, expr in parse_queue]


def promtool_check(exprs, promtool, workdir):
    """Runs promtool check rules on the expressions as recording rules: (ok, output)."""
    rules = {"groups": [{"name": "dashboard_queries",
                         "rules": [{"record": f"dashboard_check:query_{i}", "expr": expr}
                                   for i, expr in enumerate(exprs)]}]}
    path = os.path.join(workdir, "queries.rules.yml")
    with open(path, "w", encoding="utf-8") as f:
        yaml.safe_dump(rules, f, default_flow_style=False, sort_keys=False, width=1 << 20)
    result = subprocess.run([promtool, "check", "rules", path], capture_output=True, text=True)
    return result.returncode == 0, (result.stdout + result.stderr)


def parse_all(parse_queue, problems):
    promtool = shutil.which("promtool")
    if promtool is None:
        problems.add("check_dashboards", "promtool is not on PATH (Debian: apt-get install prometheus)")
        return
    if not parse_queue:
        return
    with tempfile.TemporaryDirectory(prefix="check-dashboards-") as workdir:
        ok, _ = promtool_check([expr for _, expr in parse_queue], promtool, workdir)
        if ok:
            return
        # Something does not parse: find which, one at a time.
        for there, expr in parse_queue:
            ok, output = promtool_check([expr], promtool, workdir)
            if not ok:
                reason = " ".join(line.strip() for line in output.splitlines()
                                  if "parse" in line or "error" in line.lower()) or output.strip()
                reason = re.sub(r"^.*?could not parse expression: ", "", reason)
                problems.add(there, f"does not parse as PromQL: {reason}\n    query as sent: {expr}")


def main(argv):
    paths = argv[1:] or sorted(glob.glob(os.path.join(REPO, "dashboards", "*.json")))
    if not paths:
        print("check_dashboards: no dashboards found in dashboards/*.json", file=sys.stderr)
        return 1
    problems = Problems()
    counts = {"dashboards": 0, "panels": 0, "queries": 0}
    uids = {}
    parse_queue = []
    for path in paths:
        queue = []
        check_dashboard(path, problems, queue, counts, uids)
        parse_queue += queue
    parse_all(parse_queue, problems)
    if problems.items:
        for item in problems.items:
            print(f"check_dashboards: {item}", file=sys.stderr)
        print(f"check_dashboards: FAILED: {len(problems.items)} problem(s) in {len(paths)} dashboard file(s)",
              file=sys.stderr)
        return 1
    print(f"check_dashboards: OK: {counts['dashboards']} dashboard(s), {counts['panels']} panels, "
          f"{counts['queries']} queries (structure, and PromQL parsed by promtool)")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
