"""The evaluation's outputs for people: a markdown table and an SVG bar chart (no plotting library: the chart is
a few rectangles, and the same input always gives the same bytes)."""

from __future__ import annotations

from html import escape


def _fmt(value, digits: int = 3) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def markdown(results: dict) -> str:
    """The evaluation table: pass@k per benchmark, FIM exact match and pass@1, held-out bits per byte."""
    lines = [f"Evaluation of {results['model']} ({results['backend']}, n={results['sampling']['n']}, "
             f"temperature {results['sampling']['temperature']})", "",
             "| benchmark | tasks | " + " | ".join(f"pass@{k}" for k in results["pass_k"]) + " |",
             "| --- | ---: | " + " | ".join("---:" for _ in results["pass_k"]) + " |"]
    for name, bench in results["benchmarks"].items():
        cells = " | ".join(_fmt(bench.get(f"pass@{k}")) for k in results["pass_k"])
        lines.append(f"| {name} | {bench['tasks']} | {cells} |")
    if results.get("fim"):
        lines += ["", "| FIM (HumanEval, SPM) | tasks | exact match | pass@1 |", "| --- | ---: | ---: | ---: |"]
        for kind, fim in results["fim"].items():
            lines.append(f"| {kind} | {fim['tasks']} | {_fmt(fim['exact_match'])} | {_fmt(fim['pass@1'])} |")
    if results.get("bpb"):
        lines += ["", "| held-out language | files | bytes | tokens | bits/byte |", "| --- | ---: | ---: | ---: | ---: |"]
        for language, entry in sorted(results["bpb"].items(), key=lambda kv: (kv[0] == "overall", kv[0])):
            lines.append(f"| {language} | {entry['files']} | {entry['bytes']:,} | {entry['tokens']:,} | "
                         f"{_fmt(entry['bits_per_byte'])} |")
    return "\n".join(lines) + "\n"


def bar_chart(title: str, bars: list[tuple[str, float, float | None]], *, unit: str = "", width: int = 640,
              origin: float = 0.0) -> str:
    """A horizontal bar chart as SVG: one bar per (label, value, spread); spread draws a ±error whisker. Bars start
    at ``origin`` (said under the chart when it is not 0, so small differences of large values stay visible)."""
    row, left, right, top = 26, 200, 120, 40
    height = top + row * len(bars) + (36 if origin else 20)
    scale_max = max([v + (e or 0) for _l, v, e in bars] + [origin + 1e-9])
    span = width - left - right

    def x(value: float) -> float:
        return left + span * (value - origin) / (scale_max - origin)

    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
             f'font-family="sans-serif" font-size="12">',
             f'<text x="{width / 2:.0f}" y="22" text-anchor="middle" font-size="14">{escape(title)}</text>']
    for i, (label, value, spread) in enumerate(bars):
        y = top + i * row
        end = x(value)
        parts.append(f'<text x="{left - 8}" y="{y + 15}" text-anchor="end">{escape(label)}</text>')
        parts.append(f'<rect x="{left}" y="{y + 3}" width="{end - left:.1f}" height="{row - 8}" fill="#4a7ab5"/>')
        if spread:
            lo, hi, mid = x(value - spread), x(value + spread), y + row / 2 - 1
            parts.append(f'<path d="M{lo:.1f},{mid:.1f}H{hi:.1f}M{lo:.1f},{mid - 5:.1f}V{mid + 5:.1f}'
                         f'M{hi:.1f},{mid - 5:.1f}V{mid + 5:.1f}" stroke="#222" fill="none"/>')
        text = f"{value:.3f}" + (f" ± {spread:.3f}" if spread else "") + (f" {unit}" if unit else "")
        parts.append(f'<text x="{max(end, x(value + (spread or 0))) + 6:.1f}" y="{y + 15}">{escape(text)}</text>')
    if origin:
        parts.append(f'<text x="{left}" y="{height - 8}" font-size="11">bars start at {origin:g}{" " + unit if unit else ""}'
                     "</text>")
    parts.append("</svg>")
    return "\n".join(parts) + "\n"


def chart(results: dict) -> str:
    """The evaluation's chart: every score in [0, 1] (pass@1, FIM), then bits per byte by language."""
    bars = [(f"{name} pass@1", bench.get("pass@1") or 0.0, None) for name, bench in results["benchmarks"].items()]
    for kind, fim in (results.get("fim") or {}).items():
        bars += [(f"FIM {kind} exact", fim["exact_match"], None), (f"FIM {kind} pass@1", fim["pass@1"], None)]
    bpb = [(f"bits/byte {language}", entry["bits_per_byte"], None)
           for language, entry in sorted((results.get("bpb") or {}).items()) if entry["bits_per_byte"] is not None]
    svg_scores = bar_chart("scores (0-1)", bars)
    if not bpb:
        return svg_scores
    svg_bpb = bar_chart("held-out bits per byte (lower is better)", bpb)
    # two charts stacked in one SVG
    first_height = int(svg_scores.split('height="')[1].split('"')[0])
    second_height = int(svg_bpb.split('height="')[1].split('"')[0])
    inner = lambda svg: svg.split(">", 1)[1].rsplit("</svg>", 1)[0]  # noqa: E731
    return (f'<svg xmlns="http://www.w3.org/2000/svg" width="640" height="{first_height + second_height}" '
            f'font-family="sans-serif" font-size="12">\n<g>{inner(svg_scores)}</g>\n'
            f'<g transform="translate(0,{first_height})">{inner(svg_bpb)}</g>\n</svg>\n')
