"""Writes docs/benchmarks.md from one run's results (bench.sh calls it; nothing here measures).

    python3 report.py machine > RESULTS/machine.json          # at the start of the run
    python3 report.py render --results RESULTS --output docs/benchmarks.md --seconds 412 --mode full

RESULTS holds what each section left: JSON from the Python scripts (veth_drop.json, nginx_reject.json,
syn_flood.json), the printed tables of the Swift benchmarks (xdp.txt, scrape.txt, lists.txt), and for a
section that failed, NAME.error with the end of what it said. Every section is rendered from its own
file; a missing or failed one is said to be so, and the rest still render.
"""

import argparse
import datetime
import json
import os
import platform
import re
import subprocess
import sys



def contents(path):
    """A file's text, the file closed at once."""
    with open(path) as file:
        return file.read()


# MARK: The machine

def first_line(arguments):
    try:
        result = subprocess.run(arguments, capture_output=True, text=True, timeout=30)
        return (result.stdout or result.stderr).strip().splitlines()[0]
    except (OSError, IndexError, subprocess.TimeoutExpired):
        return "unknown"


def describe_machine():
    cpuinfo = contents("/proc/cpuinfo")
    model = re.search(r"^model name\s*:\s*(.*)$", cpuinfo, re.M)
    memory = re.search(r"^MemTotal:\s*(\d+) kB", contents("/proc/meminfo"), re.M)
    repository = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    commit = first_line(["git", "-C", repository, "rev-parse", "--short=12", "HEAD"])
    dirty = subprocess.run(["git", "-C", repository, "status", "--porcelain", "--untracked-files=no"],
                           capture_output=True, text=True).stdout.strip()
    return {
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "commit": commit + (" (with uncommitted changes)" if dirty else ""),
        "kernel": platform.release(),
        "cpu": model.group(1).strip() if model else platform.processor() or "unknown",
        "cores": os.cpu_count(),
        "memory_gib": round(int(memory.group(1)) / 1024 / 1024, 1) if memory else None,
        "swift": first_line(["swift", "--version"]),
        "nginx": first_line(["nginx", "-v"]),
        "trafgen": first_line(["trafgen", "--version"]),
        "load_average": contents("/proc/loadavg").split()[:3],
    }


# MARK: Reading the results

def read_json(results, name):
    path = os.path.join(results, name + ".json")
    return json.loads(contents(path)) if os.path.exists(path) else None


def read_text(results, name):
    path = os.path.join(results, name + ".txt")
    return contents(path) if os.path.exists(path) else None


def failure(results, name):
    """What a section that did not complete said, or why it has no figures."""
    path = os.path.join(results, name + ".error")
    if os.path.exists(path):
        return "**Not measured in this run: the section failed.** Its last words:\n\n```\n" + contents(path).strip() + "\n```\n"
    text = read_text(results, name)
    if text is not None:
        # The tool ran but printed nothing this script can read: its format changed. Show what it printed.
        return "**The tool's output has no table this report can read** (did its format change?). It printed:\n\n```\n" + text.strip() + "\n```\n"
    return "**Not measured in this run** (skipped).\n"


def parse_xdp(text):
    """gatewarden-bench's tables: {title: [(program, ns, minus empty, vs naive)]}."""
    tables, title = {}, None
    for line in text.splitlines():
        if line and not line.startswith(" ") and line.endswith(":"):
            title = line[:-1]
            tables[title] = []
            continue
        row = re.match(r"^  (\S.*?)\s{2,}(-?[\d.]+)\s+(-?[\d.]+)\s+(-?[\d.]+)x$", line)
        if row and title:
            tables[title].append((row.group(1), float(row.group(2)), float(row.group(3)), float(row.group(4))))
    return tables


def parse_scrape(text):
    rows = []
    for line in text.splitlines():
        fields = line.split()
        if len(fields) == 9 and all(re.fullmatch(r"[\d.]+", field) for field in fields):
            rows.append([float(field) for field in fields])
    return rows


def parse_lists(text):
    rows = []
    for line in text.splitlines():
        row = re.match(r"^(blocklist|allowlist)\s+(\d+)\s+(.+?)\s+([\d.]+)\s+\((.*)\)$", line)
        if row:
            rows.append((row.group(1), int(row.group(2)), row.group(3), float(row.group(4)), row.group(5)))
    return rows


# MARK: Markdown

def table(header, rows, align=None):
    align = align or ["---"] + ["---:"] * (len(header) - 1)
    lines = ["| " + " | ".join(header) + " |", "| " + " | ".join(align) + " |"]
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
    return "\n".join(lines) + "\n"


def number(value, digits=0):
    return f"{value:,.{digits}f}"


def rounds(count):
    return "1 round" if count == 1 else f"{count} rounds"


def xdp_drop_ns(xdp):
    """Gatewarden's cost of a drop: the hot source over its limit, through BPF_PROG_TEST_RUN."""
    for rows in xdp.values():
        for program, ns, _, _ in rows:
            if program.startswith("gatewarden, over limit (dropped)"):
                return ns
    return None


def section_xdp(results):
    text = read_text(results, "xdp")
    tables = parse_xdp(text) if text else {}
    out = ["## XDP: nanoseconds per packet, Gatewarden against the seed's naive program\n",
           "`gatewarden-bench` runs each program through `BPF_PROG_TEST_RUN`: one hot source repeated in the kernel, "
           "and a spoofed flood from distinct sources driven back to back by an in-kernel harness "
           "(bpf/bench/flood_harness.c). *naive fixed window* is the seed articles' limiter (the baseline); "
           "*empty XDP_PASS* is the floor. Contenders take turns within each run; figures are medians. "
           "Answering a SYN with a SYN cookie rewrites the frame, so that table runs each SYN once, from a "
           "distinct source, one test run each (the test run's own cost is in every row): *answered* is the "
           "program in generic mode's default, computing the kernel's cookie, looking up the route and writing "
           "the SYN-ACK.\n"]
    if not tables:
        return "\n".join(out) + "\n" + failure(results, "xdp")
    for title, rows in tables.items():
        out.append(f"**{title}**\n")
        out.append(table(["program", "ns/packet", "minus empty", "vs naive"],
                         [(program, number(ns, 1), number(minus, 1), f"{ratio:.2f}x") for program, ns, minus, ratio in rows]))
    return "\n".join(out)


def section_veth(results):
    data = read_json(results, "veth_drop")
    out = ["## Drop throughput on veth, per filter\n",
           "One source floods TCP SYNs to port 443 from the client namespace with trafgen pinned to one CPU; each "
           "filter in the gateway namespace drops them (*no filter*: the stack answers each with a RST). On veth the "
           "receiver's work runs on the sender's CPU inside its send, so the generator's rate is what the receiver "
           "absorbs on one CPU. *Receiver ns* subtracts the generator alone (gateway link down: frames dropped at the "
           "sender). Filters take turns round after round; medians.\n"]
    if not data:
        return "\n".join(out) + "\n" + failure(results, "veth_drop")
    out.append(f"{number(data['frames'])} frames per filter per round, {rounds(data['rounds'])}.\n")
    out.append(table(["filter", "packets/s", "ns/packet (whole CPU)", "receiver ns/packet", "vs no filter"],
                     [(row["filter"], number(row["packets_per_second"]), number(row["ns_per_packet"]),
                       "-" if row["receiver_ns_per_packet"] == 0 else number(row["receiver_ns_per_packet"]),
                       f"{row['vs_no_filter']:.2f}x") for row in data["rows"]]))
    out.append("veth is not a NIC: its frames arrive as skbs the sender already built, and native XDP on veth copies "
               "each one that lacks XDP headroom (trafgen's do) into a page of its own before the program runs, so "
               "native and generic mode cost about the same here (which one is ahead changes from run to run). On a "
               "physical NIC native XDP drops a frame before the kernel "
               "allocates anything. The cost of the program itself is the XDP table above.\n")
    return "\n".join(out)


def section_nginx(results):
    data = read_json(results, "nginx_reject")
    xdp_text = read_text(results, "xdp")
    xdp_ns = xdp_drop_ns(parse_xdp(xdp_text)) if xdp_text else None
    out = ["## CPU per rejected request: nginx `limit_req` 429 against a Gatewarden XDP drop\n",
           "nginx (one worker, pinned to the second CPU; access log off, the error log at its default level, which "
           "records each rejection) serves a static file under `limit_req` at 1 request/minute per address, "
           "`nodelay`, status 429 (a `return 200` location answers before limit_req runs). Four Python clients "
           "pinned to the first CPU send N requests between them, each one after the other (with several "
           "connections ready per wakeup, a 429 costs nginx about half what it does with one); the worker's CPU "
           "time (utime + stime from /proc/PID/stat) over the run divided by N is the figure. The client's packets are received on the "
           "client's CPU (veth), so the worker's figure is a floor of what a 429 costs the gateway. Gatewarden's "
           "figure is its program dropping a source over its limit (the hot-source row above). Kinds take turns "
           "round after round; medians.\n"]
    if not data:
        return "\n".join(out) + "\n" + failure(results, "nginx_reject")
    rows = []
    for row in data["rows"]:
        us = row["us_per_request"]
        ratio = f"{us * 1000 / xdp_ns:,.0f}x" if xdp_ns else "-"
        rows.append((row["client"], number(row["requests"]), "/".join(str(t) for t in row["ticks"]),
                     number(us, 1), number(xdp_ns, 1) if xdp_ns else "-", ratio))
    out.append(f"{data['nginx']}; {rounds(data['rounds'])}; CPU in ticks of 1/{data['ticks_per_second']} s.\n")
    out.append(table(["client", "requests per round", "worker ticks per round", "nginx µs per 429",
                      "XDP ns per drop", "nginx / XDP"], rows))
    return "\n".join(out)


def section_syn_flood(results):
    data = read_json(results, "syn_flood")
    out = ["## Spoofed SYN flood against nginx (TLS), with and without Gatewarden\n",
           "nginx serves TLS (RSA 2048) in the gateway namespace. From the client namespace, on one CPU, trafgen "
           "floods SYNs to 443 from random sources across the unicast space (under every per-source and per-subnet "
           "limit) while a legitimate client opens a new TLS connection per request, 10 a second. Frames the gateway "
           "received per second are what it absorbed (veth: its softirq runs on the generator's CPU). Rounds without "
           "Gatewarden, with it as `gatewarden load` sets it up (default policy; on veth generic XDP mode, where the "
           "XDP program answers SYNs with SYN cookies) and with `--xdp-mode native` (XDP passes the SYNs to "
           "nftables, where `synproxy` answers them untracked) alternate; medians, and for the "
           "legitimate client totals over all rounds. Conntrack entries are counted from each round's start (a "
           "legitimate connection stays for its timeout): with Gatewarden they are the legitimate client's, one a "
           "request; without it conntrack is not loaded at all.\n"]
    if not data:
        return "\n".join(out) + "\n" + failure(results, "syn_flood")
    without, with_ = data["without"], data["with"]
    native = data.get("native") or with_
    ratio = lambda run: f"{run['absorbed_per_second'] / without['absorbed_per_second']:.2f}x" if without["absorbed_per_second"] else ""
    out.append(f"{data['seconds']:g} s of flood per round, {rounds(data['rounds'])}.\n")
    out.append(table(["", "without Gatewarden", "with Gatewarden (default)", "with / without",
                      "with Gatewarden (native XDP)", "with / without"], [
        ("SYNs absorbed per second (median)", number(without["absorbed_per_second"]),
         number(with_["absorbed_per_second"]), ratio(with_), number(native["absorbed_per_second"]), ratio(native)),
        ("legitimate requests ok / failed", f"{without['legitimate_ok']} / {without['legitimate_failed']}",
         f"{with_['legitimate_ok']} / {with_['legitimate_failed']}", "",
         f"{native['legitimate_ok']} / {native['legitimate_failed']}", ""),
        ("legitimate latency p50 / p99, ms", f"{without['legitimate_p50_ms']} / {without['legitimate_p99_ms']}",
         f"{with_['legitimate_p50_ms']} / {with_['legitimate_p99_ms']}", "",
         f"{native['legitimate_p50_ms']} / {native['legitimate_p99_ms']}", ""),
        ("conntrack entries added in a round, most", number(without["conntrack_peak"]), number(with_["conntrack_peak"]),
         "", number(native["conntrack_peak"]), ""),
    ]))
    errors = without["errors"] + with_["errors"]
    if errors:
        out.append("Legitimate client errors (first few): " + "; ".join(f"`{e}`" for e in errors[:3]) + "\n")
    return "\n".join(out)


def section_scrape(results):
    text = read_text(results, "scrape")
    rows = parse_scrape(text) if text else []
    out = ["## Scrape latency and memory against state size\n",
           "`gatewarden-scrape-bench` fills the XDP source map (one source in twenty an offender) and an nftables set "
           "in a lab namespace, then times scrapes of the real `gatewarden serve` over loopback, its resident memory, "
           "and in the same run the seed's approach (`nft -j list table` parsed by Python; nftables only) and a "
           "per-key map walk against the batch walk the exporter uses. Times in ms.\n"]
    if not rows:
        return "\n".join(out) + "\n" + failure(results, "scrape")
    out.append(table(["tracked sources", "set elements", "scrape median", "scrape p99", "RSS MB", "peak RSS MB",
                      "seed nft + python", "per-key walk", "batch walk"],
                     [(number(r[0]), number(r[1]), number(r[2], 1), number(r[3], 1), number(r[4], 1), number(r[5], 1),
                       number(r[6], 1), number(r[7], 1), number(r[8], 1)) for r in rows]))
    return "\n".join(out)


def section_lists(results):
    text = read_text(results, "lists")
    rows = parse_lists(text) if text else []
    out = ["## Policy load and re-apply time with large lists\n",
           "`gatewarden-list-bench`: `gatewarden load` end to end on a veth in a namespace of its own (first with an "
           "empty list: what any load costs, the baseline; then with the list; the same policy again, which "
           "re-applies in place; a tenth of the entries changed), and each layer alone. Seconds, medians.\n"]
    if not rows:
        return "\n".join(out) + "\n" + failure(results, "lists")
    baselines = {(kind, size): value for kind, size, step, value, _ in rows if step.endswith("(first, empty list)")}
    out.append(table(["list", "entries", "step", "median s", "vs load with empty list", "runs"],
                     [(kind, number(size), step, f"{value:.3f}",
                       f"{value / baselines[(kind, size)]:.2f}x" if baselines.get((kind, size)) else "-", runs)
                      for kind, size, step, value, runs in rows],
                     align=["---", "---:", "---", "---:", "---:", "---"]))
    return "\n".join(out)


def section_summary(results):
    xdp_text = read_text(results, "xdp")
    tables = parse_xdp(xdp_text) if xdp_text else {}
    lines = []
    hot = next(iter(tables.values()), [])
    naive = next((ns for program, ns, _, _ in hot if program.startswith("naive")), None)
    drop = xdp_drop_ns(tables)
    if drop and naive:
        lines.append(f"- Gatewarden's XDP program drops a packet over its limit in **{drop:.0f} ns** "
                     f"({drop / naive:.2f}x the seed's naive fixed window, {naive:.0f} ns).")
    flood = [rows for title, rows in tables.items() if title.startswith("Spoofed flood")]
    if flood:
        by_name = {program: ns for program, ns, _, _ in flood[0]}
        gw = by_name.get("gatewarden (default limits)")
        naive_flood = by_name.get("naive fixed window")
        if gw and naive_flood:
            lines.append(f"- Under a spoofed flood of distinct sources: **{gw:.0f} ns** per packet, "
                         f"{gw / naive_flood:.2f}x the naive program's {naive_flood:.0f} ns.")
    nginx = read_json(results, "nginx_reject")
    if nginx and drop:
        for row in nginx["rows"]:
            if row["client"] in ("plain HTTP, keep-alive", "plain HTTP, new connection", "TLS, new connection (ECDSA P-256)"):
                lines.append(f"- nginx `limit_req`, {row['client']}: **{row['us_per_request']:.1f} µs** of worker CPU "
                             f"per 429, **{row['us_per_request'] * 1000 / drop:,.0f}x** an XDP drop.")
    flood_data = read_json(results, "syn_flood")
    if flood_data and flood_data["without"]["absorbed_per_second"]:
        w, wo = flood_data["with"], flood_data["without"]
        lines.append(f"- Spoofed SYN flood on one CPU: the gateway absorbed **{w['absorbed_per_second']:,.0f} SYN/s** with "
                     f"Gatewarden, {wo['absorbed_per_second']:,.0f} without "
                     f"({w['absorbed_per_second'] / wo['absorbed_per_second']:.2f}x); legitimate TLS requests with "
                     f"Gatewarden: {w['legitimate_ok']} ok, {w['legitimate_failed']} failed; conntrack entries added in a round "
                     f"at most {w['conntrack_peak']} (the flood's SYNs are not tracked).")
    return "## Summary\n\n" + ("\n".join(lines) if lines else "No figures in this run.") + "\n"


def render(results, seconds, mode, command):
    machine = read_json(results, "machine") or {}
    header = [
        "# Benchmarks\n",
        f"Generated by `{command}` from one run; every ratio compares figures measured in that same run. "
        "Do not edit by hand: run the command again. Benchmarks measure; they never fail for being slow.\n",
        table(["", ""], [
            ("date", machine.get("date", "?")), ("commit", machine.get("commit", "?")),
            ("kernel", machine.get("kernel", "?")), ("CPU", machine.get("cpu", "?")),
            ("cores", machine.get("cores", "?")), ("memory", f"{machine.get('memory_gib', '?')} GiB"),
            ("swift", machine.get("swift", "?")), ("nginx", machine.get("nginx", "?")),
            ("trafgen", machine.get("trafgen", "?")),
            ("load average at start", " ".join(machine.get("load_average", []))),
            ("mode", f"{mode} ({seconds // 60} min {seconds % 60} s)"),
        ], align=["---", "---"]),
        "Figures from a shared or busy machine move from run to run (other work takes CPU from the generator and "
        "from the measured process alike); compare ratios within one run rather than figures across runs.\n",
    ]
    sections = [section_summary(results), section_xdp(results), section_veth(results), section_nginx(results),
                section_syn_flood(results), section_scrape(results), section_lists(results),
                section_enforce(results)]
    return "\n".join(header) + "\n" + "\n".join(sections)


def section_enforce(results):
    """The enforce loop's figures, as its three benchmarks print them."""
    out = ["## Enforce loop: bans, the ban store, the TLS-session-reuse feed\n",
           "`gatewarden-ban-bench` writes /32 bans into each kernel layer through the enforce loop's own sinks, in a "
           "lab namespace (goals: 10,000/s into XDP, 5,000/s into nftables; a restore of 100,000 in under 20 s), then "
           "checks both layers against what they should hold, which must rewrite nothing. `gatewarden-store-bench` "
           "times the SQLite ban store and the violation tracker; `gatewarden-feed-bench` the nginx log feed "
           "(goal: 200,000 lines/s per core) and its memory with millions of distinct sources.\n"]
    for name in ("bans", "store", "feed"):
        text = read_text(results, name)
        out.append(f"```\n{text.rstrip()}\n```\n" if text else failure(results, name) + "\n")
    return "\n".join(out)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("machine", help="describe this machine as JSON")
    render_command = commands.add_parser("render", help="write the markdown report")
    render_command.add_argument("--results", required=True)
    render_command.add_argument("--output", required=True)
    render_command.add_argument("--seconds", type=int, default=0)
    render_command.add_argument("--mode", default="full")
    render_command.add_argument("--reproduce", default="sudo scripts/bench.sh")
    options = parser.parse_args()
    if options.command == "machine":
        json.dump(describe_machine(), sys.stdout, indent=1)
        print()
        return
    markdown = render(options.results, options.seconds, options.mode, options.reproduce)
    with open(options.output, "w") as file:
        file.write(markdown)


if __name__ == "__main__":
    main()
