"""What the UI knows about the pipeline, and the pure views it computes from commits and task instances.

Everything here works on plain dicts (a commit's stats, a task instance's state), so it is tested without a lake
or an Airflow database. ``PIPELINE`` lists every stage with the DAG that runs it and the kind of partition it
works on (a snapshot, a release, a scorer version); a test checks it against the DAG files, so a stage added to a
DAG without being added here fails the suite.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

OUT_BY_LANGUAGE = "records_out_by_language"  # lake.stage.OUT_BY_LANGUAGE (the plugin keeps its imports light)


@dataclass(frozen=True)
class StageSpec:
    stage: str
    dag_id: str
    funnel: bool  # its records_out are the next funnel stage's records_in
    partition: str = "snapshot"  # what one run of it processes: a snapshot, a release or a scorer version
    task: str = ""  # its task id in the DAG (default: the stage's name)

    @property
    def task_id(self) -> str:
        return self.task or self.stage


PIPELINE: tuple[StageSpec, ...] = (
    StageSpec("crawl", "crawl", True),
    StageSpec("exact_dedup", "dedup", True),
    StageSpec("near_dedup", "dedup", True),
    StageSpec("syntax_filter", "filters", True),
    StageSpec("rule_filter", "filters", True),
    StageSpec("decontaminate", "filters", True),
    StageSpec("pii_redact", "filters", True),
    StageSpec("score", "quality", False),
    StageSpec("quality_filter", "quality", True),
    # a scorer version (models/scorer/{version}): labels, then the trained scorer
    StageSpec("oracle_label", "scorer", False, "scorer"),
    StageSpec("train_scorer", "scorer", False, "scorer"),
    # a release (release={name}): the cut from many snapshots, its tokenizer, token shards and model
    StageSpec("release", "release", False, "release", "cut_release"),
    StageSpec("tokenizer", "dataset", False, "release"),
    StageSpec("dataset_build", "dataset", False, "release"),
    StageSpec("pretrain", "pretrain", False, "release"),
    StageSpec("evaluate", "evaluate", False, "release"),
)
KINDS = ("snapshot", "release", "scorer")


def stages_of(kind: str) -> tuple[StageSpec, ...]:
    """The stages whose runs process partitions of ``kind``, in pipeline order.

    >>> [s.stage for s in stages_of("release")]
    ['release', 'tokenizer', 'dataset_build', 'pretrain', 'evaluate']
    """
    return tuple(s for s in PIPELINE if s.partition == kind)


STAGES = {s.stage: s for s in PIPELINE}
FUNNEL = tuple(s.stage for s in PIPELINE if s.funnel)
DAG_IDS = tuple(dict.fromkeys(s.dag_id for s in PIPELINE))

ACTIVE = {"running", "queued", "scheduled", "deferred", "up_for_retry", "up_for_reschedule", "restarting"}
FAILED = {"failed", "upstream_failed"}


def stage_state(committed_at: str | None, ti: dict | None) -> str:
    """committed / running / failed / not run, from the lake's commit and the stage's latest task instance.

    A running task wins (a re-run is under way); a failure after the last commit is a failure (the earlier
    commit is still what readers see); otherwise the lake decides.

    >>> stage_state("2026-11-01T10:00:00+00:00", None)
    'committed'
    >>> stage_state("2026-11-01T10:00:00+00:00", {"state": "running", "start_date": "2026-11-02T00:00:00+00:00"})
    'running'
    >>> stage_state("2026-11-01T10:00:00+00:00", {"state": "failed", "start_date": "2026-11-02T00:00:00+00:00"})
    'failed'
    >>> stage_state("2026-11-03T10:00:00+00:00", {"state": "failed", "start_date": "2026-11-02T00:00:00+00:00"})
    'committed'
    >>> stage_state(None, {"state": "success"}), stage_state(None, None)
    ('not run', 'not run')
    """
    state = (ti or {}).get("state")
    if state in ACTIVE:
        return "running"
    if state in FAILED and (committed_at is None or (ti.get("start_date") or "") > committed_at):
        return "failed"
    return "committed" if committed_at else "not run"


def funnel(stats: dict[str, dict]) -> list[dict]:
    """One row per committed funnel stage, in chain order: records in and out, drops by reason, share kept.

    ``unaccounted`` is what neither the output nor a drop reason explains (0 for a consistent stage; a stage
    whose input changed after it ran shows it here).

    >>> rows = funnel({"near_dedup": {"records_in": 8, "records_out": 6, "drop_reasons": {"near_duplicate_file": 2}},
    ...                "crawl": {"records_in": 12, "records_out": 10, "drop_reasons": {"binary": 1, "vendored": 1}},
    ...                "score": {"records_in": 6, "records_out": 6}})
    >>> [(r["stage"], r["records_in"], r["records_out"], r["dropped"], r["kept_share"]) for r in rows]
    [('crawl', 12, 10, 2, 0.8333), ('near_dedup', 8, 6, 2, 0.75)]
    >>> rows[1]["unaccounted"], rows[1]["input_gap"]
    (0, 2)
    """
    rows, previous_out = [], None
    for stage in FUNNEL:
        s = stats.get(stage)
        if s is None:
            continue
        drops = {k: int(v) for k, v in sorted((s.get("drop_reasons") or {}).items(), key=lambda kv: -kv[1]) if v}
        n_in, n_out = int(s.get("records_in") or 0), int(s.get("records_out") or 0)
        rows.append({"stage": stage, "records_in": n_in, "records_out": n_out, "dropped": sum(drops.values()),
                     "drop_reasons": drops, "unaccounted": n_in - n_out - sum(drops.values()),
                     "kept_share": round(n_out / n_in, 4) if n_in else None,
                     # records the previous funnel stage kept that this one did not read (a stage skipped or
                     # re-run on an older input); 0 when the chain is consistent
                     "input_gap": (previous_out - n_in) if previous_out is not None else 0})
        previous_out = n_out
    return rows


def language_funnel(stats: dict[str, dict], top: int = 12) -> dict[str, Any]:
    """Kept records per language after each funnel stage (from ``records_out_by_language``), biggest first.

    Languages past ``top`` are summed into ``other``.

    >>> lf = language_funnel({"crawl": {"metrics": {OUT_BY_LANGUAGE: {"Python": 5, "C": 3, "JSON": 1}}},
    ...                       "exact_dedup": {"metrics": {OUT_BY_LANGUAGE: {"Python": 4, "C": 3}}}}, top=2)
    >>> lf["stages"], lf["languages"]
    (['crawl', 'exact_dedup'], [{'language': 'Python', 'counts': [5, 4]}, {'language': 'C', 'counts': [3, 3]}, {'language': 'other', 'counts': [1, 0]}])
    """
    stages = [s for s in FUNNEL if OUT_BY_LANGUAGE in ((stats.get(s) or {}).get("metrics") or {})]
    per_stage = [stats[s]["metrics"][OUT_BY_LANGUAGE] for s in stages]
    first = per_stage[0] if per_stage else {}
    names = sorted({lang for counts in per_stage for lang in counts}, key=lambda lang: (-first.get(lang, 0), lang))
    shown, rest = names[:top], names[top:]
    languages = [{"language": lang, "counts": [int(c.get(lang, 0)) for c in per_stage]} for lang in shown]
    if rest:
        languages.append({"language": "other", "counts": [sum(int(c.get(lang, 0)) for lang in rest)
                                                          for c in per_stage]})
    return {"stages": stages, "languages": languages}


def bar_widths(values: list[int], width: float = 100.0) -> list[float]:
    """Bar lengths (percent of the widest) for a chart; all zero when every value is zero.

    >>> bar_widths([10, 5, 0])
    [100.0, 50.0, 0.0]
    """
    top = max(values, default=0)
    return [round(width * v / top, 2) if top else 0.0 for v in values]


def dedup_view(stats: dict[str, dict]) -> list[dict]:
    """Per dedup stage: share removed at repository and file level, and its duplicate clusters.

    >>> v = dedup_view({"exact_dedup": {"records_in": 100, "records_out": 70, "metrics": {"clusters": {}},
    ...                 "drop_reasons": {"exact_duplicate_repo": 20, "exact_duplicate_file": 10}}})
    >>> v[0]["removed"], v[0]["removed_share"]
    ({'repo': 20, 'file': 10}, {'repo': 0.2, 'file': 0.1})
    """
    out = []
    for stage, prefix in (("exact_dedup", "exact_duplicate_"), ("near_dedup", "near_duplicate_")):
        s = stats.get(stage)
        if s is None:
            continue
        drops, n_in = s.get("drop_reasons") or {}, int(s.get("records_in") or 0)
        removed = {level: int(drops.get(prefix + level, 0)) for level in ("repo", "file")}
        metrics = s.get("metrics") or {}
        out.append({"stage": stage, "records_in": n_in, "records_out": int(s.get("records_out") or 0),
                    "removed": removed,
                    "removed_share": {k: round(v / n_in, 4) if n_in else 0.0 for k, v in removed.items()},
                    "clusters": metrics.get("clusters") or {},
                    "metrics": {k: v for k, v in metrics.items() if k not in ("clusters", OUT_BY_LANGUAGE)}})
    return out


def histogram_bars(counts: list[int], edges: list[float], threshold: float | None) -> dict:
    """An SVG-ready histogram: bar heights in percent, and where the threshold falls on the x axis (percent).

    >>> h = histogram_bars([1, 3, 0, 2], [0.0, 2.5, 5.0, 7.5, 10.0], 6.25)
    >>> h["heights"], h["threshold_x"]
    ([33.33, 100.0, 0.0, 66.67], 62.5)
    """
    lo, hi = (edges[0], edges[-1]) if edges else (0.0, 10.0)
    x = None
    if threshold is not None and hi > lo:
        x = round(100.0 * min(max((threshold - lo) / (hi - lo), 0.0), 1.0), 2)
    return {"heights": bar_widths(counts), "counts": counts, "threshold_x": x, "lo": lo, "hi": hi}


def downsample(points: list[tuple[float, float]], limit: int = 400) -> list[tuple[float, float]]:
    """At most ``limit`` points: consecutive runs averaged (x and y), so a million-step loss curve stays drawable.

    >>> downsample([(1, 4.0), (2, 2.0), (3, 3.0), (4, 1.0)], 2)
    [(1.5, 3.0), (3.5, 2.0)]
    >>> downsample([(1, 1.0)], 10)
    [(1, 1.0)]
    """
    if len(points) <= limit:
        return list(points)
    out = []
    for i in range(limit):
        chunk = points[i * len(points) // limit: (i + 1) * len(points) // limit]
        out.append((sum(p[0] for p in chunk) / len(chunk), sum(p[1] for p in chunk) / len(chunk)))
    return out


def line_chart(points: list[tuple[float, float]], width: int = 1000, height: int = 300) -> dict:
    """SVG polyline coordinates of a curve (y grows downwards in SVG), with the axis ranges.

    >>> c = line_chart([(1, 8.0), (3, 4.0)], width=100, height=10)
    >>> c["points"], c["x"], c["y"]
    ('0.0,0.0 100.0,10.0', [1, 3], [4.0, 8.0])
    """
    if not points:
        return {"points": "", "x": [0, 0], "y": [0.0, 0.0], "width": width, "height": height}
    xs, ys = [p[0] for p in points], [p[1] for p in points]
    x0, x1, y0, y1 = min(xs), max(xs), min(ys), max(ys)
    sx = width / (x1 - x0) if x1 > x0 else 0.0
    sy = height / (y1 - y0) if y1 > y0 else 0.0
    coords = " ".join(f"{round((x - x0) * sx, 1)},{round(height - (y - y0) * sy, 1)}" for x, y in points)
    return {"points": coords, "x": [x0, x1], "y": [y0, y1], "width": width, "height": height}
