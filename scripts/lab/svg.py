"""One SVG picture of a lab run, drawn by hand (no plotting library): per scenario, a panel without and a
panel with Gatewarden, each plotting per-second rates over time on a shared logarithmic scale:

- offered: packets/s the attacker sent
- past XDP: packets/s that reached the gateway's stack from the attack link
- past nftables: of those, packets/s no rule refused or answered with a SYN cookie
- nginx connections: connections/s nginx's sockets accepted (legitimate clients included)

    open("lab.svg", "w").write(render(results))   # results: rows with their "samples"
"""
import math
from html import escape

from sampler import rates

SERIES = [("offered", "#d62728"), ("past XDP", "#ff7f0e"), ("past nftables", "#1f77b4"), ("nginx connections/s", "#2ca02c")]
PANEL_W, PANEL_H, LEFT, TOP, GAP, ROW = 430, 150, 70, 40, 40, 215


def _y(value, top_exponent):
    """Pixel row of `value` on a log scale from 1 (bottom) to 10^top_exponent (top); 0 sits on the bottom."""
    value = max(1.0, value)
    return PANEL_H - PANEL_H * math.log10(value) / top_exponent


def _panel(x0, y0, title, series, seconds, top_exponent):
    parts = [f'<g transform="translate({x0},{y0})">',
             f'<text x="0" y="-8" font-size="12">{escape(title)}</text>',
             f'<rect x="0" y="0" width="{PANEL_W}" height="{PANEL_H}" fill="none" stroke="#999"/>']
    for exponent in range(0, top_exponent + 1):
        y = _y(10 ** exponent, top_exponent)
        parts.append(f'<line x1="0" x2="{PANEL_W}" y1="{y:.1f}" y2="{y:.1f}" stroke="#eee"/>')
        label = f"{10 ** exponent:,}" if exponent < 6 else f"{10 ** (exponent - 6)}M"
        parts.append(f'<text x="-6" y="{y + 4:.1f}" font-size="10" text-anchor="end">{label}</text>')
    for second in range(0, int(seconds) + 1):
        x = PANEL_W * second / seconds
        parts.append(f'<text x="{x:.1f}" y="{PANEL_H + 14}" font-size="10" text-anchor="middle">{second}s</text>')
    for index, (_, color) in enumerate(SERIES):
        points = " ".join(f"{PANEL_W * min(t, seconds) / seconds:.1f},{_y(values[index], top_exponent):.1f}"
                          for t, *values in series)
        if points:
            parts.append(f'<polyline fill="none" stroke="{color}" stroke-width="1.8" points="{points}"/>')
    parts.append("</g>")
    return parts


def render(results):
    by_scenario = {}
    for result in results:
        by_scenario.setdefault(result["scenario"], {})[result["gatewarden"]] = result
    width = LEFT + 2 * PANEL_W + GAP + 30
    height = TOP + 30 + ROW * len(by_scenario)
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" font-family="sans-serif">',
             f'<rect width="{width}" height="{height}" fill="white"/>',
             '<text x="10" y="20" font-size="15" font-weight="bold">Gatewarden lab: offered and passed traffic per layer '
             '(per second, log scale)</text>']
    x = LEFT
    for name, color in SERIES:
        parts.append(f'<rect x="{x}" y="32" width="14" height="4" fill="{color}"/>'
                     f'<text x="{x + 18}" y="38" font-size="11">{escape(name)}</text>')
        x += 30 + 7 * len(name)
    for row, (name, runs) in enumerate(by_scenario.items()):
        serieses = {protected: rates(run["samples"]) for protected, run in runs.items()}
        peak = max([v for s in serieses.values() for _, *values in s for v in values] + [10])
        top_exponent = max(1, math.ceil(math.log10(peak)))
        seconds = max([max((t for t, *_ in s), default=1) for s in serieses.values()] + [1])
        for column, protected in enumerate((False, True)):
            if protected not in runs:
                continue
            run = runs[protected]
            title = (f"{name}, {'with' if protected else 'without'} Gatewarden: "
                     f"legit {run['legit_success_percent']:.1f}% ok, p99 {run['legit_p99_ms']} ms")
            parts += _panel(LEFT + column * (PANEL_W + GAP), TOP + 40 + row * ROW, title, serieses[protected],
                            math.ceil(seconds), top_exponent)
    parts.append("</svg>")
    return "\n".join(parts) + "\n"
