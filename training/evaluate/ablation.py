"""The ablation's arithmetic: each arm's mean and run-to-run spread over seeds, the deltas against the curated arm,
and whether a delta stands out of the noise. Pure functions over the evaluation's ``results.json`` of each run.

A delta is called clear when it exceeds twice its standard error, ``2 * sqrt(s_a^2 / n_a + s_b^2 / n_b)`` with the
seeds' sample standard deviations: with three seeds per arm this is a rough screen, not a significance test, and
the report says so next to the numbers. With one seed in either arm there is no spread to compare with, and no
delta is called clear.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Callable

from training.evaluate.report import bar_chart

REFERENCE = "curated"


def _bpb(language: str) -> Callable[[dict], float | None]:
    return lambda r: (r.get("bpb", {}).get(language) or {}).get("bits_per_byte")


def metrics_of(runs: dict[str, list[dict]]) -> list[tuple[str, Callable[[dict], float | None], bool]]:
    """(name, getter, lower is better) of every metric present in every run."""
    every = [r for results in runs.values() for r in results]
    languages = sorted(set.intersection(*(set(r.get("bpb", {})) for r in every)) - {"overall"}) if every else []
    out = [("held-out bits/byte, all languages", _bpb("overall"), True)]
    out += [(f"held-out bits/byte, {language}", _bpb(language), True) for language in languages]
    for kind in ("single_line", "multi_line"):
        out.append((f"FIM {kind.replace('_', '-')} exact match",
                    lambda r, k=kind: (r.get("fim", {}).get(k) or {}).get("exact_match"), False))
    for bench in ("humaneval", "mbpp"):
        out.append((f"{bench} pass@1", lambda r, b=bench: (r.get("benchmarks", {}).get(b) or {}).get("pass@1"), False))
    return [(name, get, lower) for name, get, lower in out if all(get(r) is not None for r in every)]


def mean_sd(values: list[float]) -> tuple[float, float]:
    """Mean and sample standard deviation (0 for one value).

    >>> mean_sd([1.0, 2.0, 3.0])
    (2.0, 1.0)
    """
    return statistics.fmean(values), (statistics.stdev(values) if len(values) > 1 else 0.0)


def compare(runs: dict[str, list[dict]], reference: str = REFERENCE) -> list[dict]:
    """One row per metric: each arm's mean, sd and n; each other arm's delta to ``reference``, its standard error,
    and whether the delta is clear of the spread (|delta| > 2 standard errors) and in whose favour.

    >>> runs = {"curated": [{"bpb": {"overall": {"bits_per_byte": b}}} for b in (2.0, 2.1, 1.9)],
    ...         "no_quality_filter": [{"bpb": {"overall": {"bits_per_byte": b}}} for b in (2.5, 2.4, 2.6)]}
    >>> row = compare(runs)[0]
    >>> round(row["deltas"]["no_quality_filter"]["delta"], 3), row["deltas"]["no_quality_filter"]["clear"]
    (0.5, True)
    >>> row["deltas"]["no_quality_filter"]["better"]
    'curated'
    >>> compare({arm: results[:1] for arm, results in runs.items()})[0]["deltas"]["no_quality_filter"]["clear"]
    False
    """
    if reference not in runs:
        raise ValueError(f"the ablation needs the {reference!r} arm to compare against (have {sorted(runs)})")
    rows = []
    for name, get, lower in metrics_of(runs):
        arms = {arm: {"mean": m, "sd": sd, "n": len(results), "values": [get(r) for r in results]}
                for arm, results in runs.items() for m, sd in [mean_sd([get(r) for r in results])]}
        ref = arms[reference]
        deltas = {}
        for arm, stats in arms.items():
            if arm == reference:
                continue
            delta = stats["mean"] - ref["mean"]
            se = math.sqrt(stats["sd"] ** 2 / stats["n"] + ref["sd"] ** 2 / ref["n"])
            clear = min(stats["n"], ref["n"]) > 1 and abs(delta) > 2 * se
            reference_better = (delta > 0) == lower
            deltas[arm] = {"delta": delta, "se": se, "clear": clear,
                           "better": (reference if reference_better else arm) if clear else None}
        rows.append({"metric": name, "lower_is_better": lower, "arms": arms, "deltas": deltas})
    return rows


def sentence(rows: list[dict], arm: str, reference: str = REFERENCE) -> str:
    """The honest one-line answer for ``arm`` against ``reference`` on the headline metric (held-out bits/byte)."""
    row = rows[0]
    d = row["deltas"][arm]
    ref, other = row["arms"][reference], row["arms"][arm]
    numbers = (f"{reference} {ref['mean']:.4f} ± {ref['sd']:.4f} vs {arm} {other['mean']:.4f} ± {other['sd']:.4f} "
               f"(n = {ref['n']} / {other['n']} seeds; delta {d['delta']:+.4f}, standard error {d['se']:.4f})")
    if min(ref["n"], other["n"]) < 2:
        return (f"On {row['metric']} the run-to-run spread is unknown (one seed): {numbers}; run more seeds before "
                f"reading anything into the difference.")
    if not d["clear"]:
        return (f"On {row['metric']} the difference does not exceed the run-to-run spread: {numbers}; this ablation "
                f"cannot tell the two corpora apart.")
    return f"On {row['metric']} the difference exceeds twice its standard error, in favour of {d['better']}: {numbers}."


def markdown(rows: list[dict], reference: str = REFERENCE) -> str:
    arms = list(rows[0]["arms"]) if rows else []
    others = [a for a in arms if a != reference]
    head = "| metric | " + " | ".join(f"{a} (mean ± sd, n)" for a in arms) + " | " + \
        " | ".join(f"{a} - {reference}" for a in others) + " |"
    lines = [head, "| --- |" + " ---: |" * (len(arms) + len(others))]
    for row in rows:
        cells = [f"{row['arms'][a]['mean']:.4f} ± {row['arms'][a]['sd']:.4f} ({row['arms'][a]['n']})" for a in arms]
        for a in others:
            d = row["deltas"][a]
            cells.append(f"{d['delta']:+.4f} (se {d['se']:.4f}){' **clear**' if d['clear'] else ''}")
        arrow = " (lower is better)" if row["lower_is_better"] else ""
        lines.append(f"| {row['metric']}{arrow} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def chart(rows: list[dict]) -> str:
    """Held-out bits per byte of each arm, mean with a ±sd whisker."""
    row = rows[0]
    bars = [(arm, s["mean"], s["sd"]) for arm, s in row["arms"].items()]
    # start the bars a little below the lowest whisker: the arms differ by hundredths of a bit on values near 2-3
    low = min(s["mean"] - s["sd"] for s in row["arms"].values())
    origin = max(0.0, round(low - 0.05 * low, 1))
    return bar_chart(f"{row['metric']} (lower is better), mean ± sd over seeds", bars, unit="bits/byte", origin=origin)
