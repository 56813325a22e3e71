"""The lab's final table and its JSON.

    print(table(results))
    print(json.dumps(for_json(results)))

The table has one row per run, without and with Gatewarden next to each other:

    scenario             gatewarden      sent   XDP drop  nft drop/rst  SYN cookies  reached stack  ...
    single-source-flood  no             1.2M          0             0            0           1.2M  ...
                         yes            1.9M       1.9M             0        2,476          4,514  ...
"""

COLUMNS = [
    ("scenario", "scenario", "<"),
    ("gatewarden", "gatewarden", "<"),
    ("attack_packets", "sent", ">"),
    ("dropped_xdp", "XDP drop", ">"),
    ("dropped_nft", "nft drop/rst", ">"),
    ("synproxy_cookies", "SYN cookies", ">"),
    ("reached_gateway", "reached stack", ">"),
    ("nginx_connections", "nginx conns", ">"),
    ("nginx_429", "nginx 429", ">"),
    ("nginx_cpu_percent", "nginx CPU", ">"),
    ("legit_success_percent", "legit ok", ">"),
    ("legit_p50_ms", "p50 ms", ">"),
    ("legit_p99_ms", "p99 ms", ">"),
]


def compact(number):
    """1234 -> '1,234', 1234567 -> '1.2M': short enough for a column, exact where it is small."""
    if number is None:
        return "-"
    if isinstance(number, float) and not number.is_integer():
        return f"{number:,.1f}"
    number = int(number)
    if abs(number) >= 10_000_000:
        return f"{number / 1e6:.0f}M"
    if abs(number) >= 1_000_000:
        return f"{number / 1e6:.1f}M"
    return f"{number:,}"


def cell(result, key, previous):
    value = result.get(key)
    if key == "scenario":
        return "" if previous and previous["scenario"] == value else value
    if key == "gatewarden":
        return ("yes" + (" (lab policy)" if result.get("policy") == "lab" else "")) if value else "no"
    if key == "nginx_cpu_percent":
        return f"{value:.0f}%"
    if key == "legit_success_percent":
        return f"{value:.1f}%"
    return compact(value)


def table(results):
    rows = [[title for _, title, _ in COLUMNS]]
    previous = None
    for result in results:
        rows.append([cell(result, key, previous) for key, _, _ in COLUMNS])
        previous = result
    widths = [max(len(row[i]) for row in rows) for i in range(len(COLUMNS))]
    lines = []
    for row in rows:
        lines.append("  ".join(value.ljust(w) if align == "<" else value.rjust(w)
                               for value, w, (_, _, align) in zip(row, widths, COLUMNS)).rstrip())
    return "\n".join(lines)


def for_json(results):
    """The results without their time series (the SVG has them)."""
    return [{k: v for k, v in r.items() if k != "samples"} for r in results]
