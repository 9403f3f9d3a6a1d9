"""The page models: what each page and its JSON twin show, built from the lake catalog and the DAG runs.

The HTML pages and the ``/api`` endpoints render the same dicts, so the browser test's numbers and the API tests'
numbers come from one place. Nothing here reads a data file: only commit pointers and the small JSON files a stage
commits beside its ``_stats.json``.
"""

from __future__ import annotations

import json
import re
from typing import Any

from lake.catalog import CommittedStage, LakeCatalog
from seedcoder_ui import pipeline
from seedcoder_ui.pipeline import FUNNEL, STAGES, stages_of

# "token" only as a whole word at the end of a key (github_token, access_token), not token counts or the tokenizer
SECRET_KEY = re.compile(r"secret|(?:^|[_-])token$|passw|api_?key|credential|authorization|private_key", re.I)


def redact(value: Any) -> Any:
    """A JSON value with every secret-looking key's value masked (stats and params are user-extensible).

    >>> redact({"api": {"token": "ghp_x", "requests": 3}, "aws_secret_access_key": "k", "files": [1]})
    {'api': {'token': '***', 'requests': 3}, 'aws_secret_access_key': '***', 'files': [1]}
    >>> redact({"github_token": "ghp_x", "tokens_per_s": 1599.2, "tokenizer_sha256": "ab"})
    {'github_token': '***', 'tokens_per_s': 1599.2, 'tokenizer_sha256': 'ab'}
    """
    if isinstance(value, dict):
        return {k: ("***" if isinstance(k, str) and SECRET_KEY.search(k) and not isinstance(v, dict | list)
                    else redact(v)) for k, v in value.items()}
    if isinstance(value, list):
        return [redact(v) for v in value]
    return value


def _commit_summary(commit: CommittedStage | None) -> dict | None:
    if commit is None:
        return None
    s = commit.stats
    return {"attempt": commit.attempt, "committed_at": commit.committed_at, "seconds": s.get("seconds"),
            "started_at": s.get("started_at"), "records_in": s.get("records_in"), "records_out": s.get("records_out"),
            "datasets": commit.datasets}


def stage_rows(commits: dict[str, CommittedStage], tis: dict[str, dict], kind: str = "snapshot") -> list[dict]:
    """Every pipeline stage of one partition of ``kind``: state, commit, latest task instance."""
    rows = []
    for spec in stages_of(kind):
        commit, ti = commits.get(spec.stage), tis.get(spec.stage)
        rows.append({"stage": spec.stage, "dag_id": spec.dag_id, "funnel": spec.funnel,
                     "state": pipeline.stage_state(commit.committed_at if commit else None, ti),
                     "commit": _commit_summary(commit), "task": ti})
    return rows


def snapshots_page(catalog: LakeCatalog, tis: dict[str, dict[str, dict]], page: int, per_page: int) -> dict:
    in_lake = set(catalog.snapshots())
    # Snapshots known only from DAG runs (queued or failed before any commit) are listed too.
    names = sorted(in_lake | set(tis), reverse=True)
    pages = max(1, -(-len(names) // per_page))
    page = min(max(page, 1), pages)
    shown = names[(page - 1) * per_page: page * per_page]
    commits = catalog.many([s for s in shown if s in in_lake])
    rows = []
    for name in shown:
        stages = stage_rows(commits.get(name, {}), tis.get(name, {}))
        crawl = commits.get(name, {}).get("crawl")
        curated = next((commits[name][s] for s in reversed(FUNNEL) if s in commits.get(name, {})), None)
        rows.append({"snapshot": name, "stages": stages,
                     "crawled": crawl.stats.get("records_in") if crawl else None,
                     "curated": curated.stats.get("records_out") if curated else None,
                     "curated_by": curated.stage if curated else None})
    return {"snapshots": rows, "page": page, "pages": pages, "total": len(names),
            "stages": [s.stage for s in stages_of("snapshot")]}


def snapshot_page(catalog: LakeCatalog, snapshot: str, tis: dict[str, dict]) -> dict:
    commits = catalog.stages(snapshot)
    stats = {name: c.stats for name, c in commits.items()}
    rows = pipeline.funnel(stats)
    biggest = max([r["records_in"] for r in rows] or [0])
    for row in rows:
        # Bars share one scale (the biggest input), so the funnel narrows visibly from stage to stage.
        row["bar_out"] = round(100.0 * row["records_out"] / biggest, 2) if biggest else 0.0
        row["bar_dropped"] = round(100.0 * row["dropped"] / biggest, 2) if biggest else 0.0
        row["dag_id"] = STAGES[row["stage"]].dag_id
        row["task"] = tis.get(row["stage"])
        row["attempt"] = commits[row["stage"]].attempt
    total_in = rows[0]["records_in"] if rows else 0
    total_out = rows[-1]["records_out"] if rows else 0
    return {"snapshot": snapshot, "exists": bool(commits) or bool(tis), "funnel": rows,
            "summary": {"records_in": total_in, "records_out": total_out,
                        "kept_share": round(total_out / total_in, 4) if total_in else None,
                        "last_stage": rows[-1]["stage"] if rows else None},
            "languages": pipeline.language_funnel(stats), "stages": stage_rows(commits, tis)}


def quality_page(catalog: LakeCatalog, snapshot: str) -> dict:
    commits = catalog.stages(snapshot)
    qf, scored = commits.get("quality_filter"), commits.get("score")
    histograms = catalog.attempt_json(qf, "score_histogram.json") if qf else None
    languages = []
    if histograms:
        threshold, edges = histograms.get("threshold"), histograms.get("bin_edges") or []
        for lang, h in sorted(histograms.get("languages", {}).items(), key=lambda kv: -kv[1].get("files", 0)):
            languages.append({"language": lang, "files": h.get("files"), "dropped": h.get("dropped"),
                              "dropped_share": h.get("dropped_share"), "mean_score": h.get("mean_score"),
                              "kept": pipeline.histogram_bars(h.get("hist_kept") or [], edges, threshold),
                              "dropped_bars": pipeline.histogram_bars(h.get("hist_dropped") or [], edges, threshold),
                              "all": h.get("hist_all") or []})
        top = max([max(x["all"] or [0]) for x in languages] or [0])
        for x in languages:  # one y scale for kept and dropped of a language: stacked bars
            local = max(x["all"] or [0])
            x["scale"] = round(100.0 * local / top, 2) if top else 0.0
            x["stack"] = [{"kept": round(100.0 * k / local, 2) if local else 0.0,
                           "dropped": round(100.0 * d / local, 2) if local else 0.0}
                          for k, d in zip(x["kept"]["counts"], x["dropped_bars"]["counts"], strict=False)]
    qm = (qf.stats.get("metrics") or {}) if qf else {}
    version = qm.get("scorer_version") or (scored.params.get("scorer_version") if scored else None)
    trained = catalog.stages(version, "scorer").get("train_scorer") if version else None
    scorer = {"version": version} if version else None
    if trained:
        m = trained.stats.get("metrics") or {}
        scorer.update({"attempt": trained.attempt, "committed_at": trained.committed_at,
                       "mae_heldout": m.get("mae_heldout"), "mae_predict_train_mean": m.get("mae_predict_train_mean"),
                       "n_train": m.get("n_train"), "n_heldout": m.get("n_heldout"), "oracle": m.get("oracle"),
                       "labelled_snapshot": m.get("snapshot"), "base_model": m.get("base_model"),
                       "threshold": m.get("threshold"),
                       "mae_heldout_by_language": m.get("mae_heldout_by_language") or {}})
    return {"snapshot": snapshot, "committed": qf is not None,
            "threshold": (histograms or {}).get("threshold", qm.get("threshold")),
            "mode": (histograms or {}).get("mode", qm.get("threshold_mode")),
            "decisions_changed": qm.get("decisions_changed"),
            "previous_scorer_version": qm.get("previous_scorer_version"),
            "dropped_share": qm.get("dropped_share"), "bin_edges": (histograms or {}).get("bin_edges") or [],
            "score_quantiles": qm.get("score_quantiles") or {}, "languages": languages, "scorer": scorer,
            "scoring": redact(scored.stats.get("metrics") or {}) if scored else None,
            "records_in": qf.stats.get("records_in") if qf else None,
            "records_out": qf.stats.get("records_out") if qf else None}


def dedup_page(catalog: LakeCatalog, snapshot: str) -> dict:
    commits = catalog.stages(snapshot)
    stages = pipeline.dedup_view({name: c.stats for name, c in commits.items()})
    for stage in stages:
        for level in stage["clusters"].values():
            buckets = level.get("size_buckets") or {}
            level["bars"] = [{"bucket": b, "clusters": n, "width": w}
                             for (b, n), w in zip(buckets.items(), pipeline.bar_widths(list(buckets.values())),
                                                  strict=True)]
        stage["metrics"] = redact(stage["metrics"])
    return {"snapshot": snapshot, "stages": stages}


def loss_curve(catalog: LakeCatalog, commit: CommittedStage, limit: int = 400) -> dict:
    """The pretraining loss per step from the committed step log (``metrics/steps-*.jsonl``), downsampled."""

    def compute() -> dict:
        records = []
        for key in commit.files.get("metrics", ()):
            data = catalog.attempt_file(commit, key[len(commit.prefix) + 1:]) or b""
            records += [json.loads(line) for line in data.decode().splitlines() if line.strip()]
        records.sort(key=lambda r: r["step"])
        points = pipeline.downsample([(r["step"], float(r["loss"])) for r in records if r.get("loss") is not None],
                                     limit)
        phases: list[dict] = []
        for r in records:  # where each phase of the schedule starts
            if r.get("phase") and (not phases or phases[-1]["phase"] != r["phase"]):
                phases.append({"phase": r["phase"], "step": r["step"]})
        return {"steps": len(records), "points": points, "phases": phases}

    curve = catalog.derived(commit, "loss_curve", compute)
    chart = pipeline.line_chart(curve["points"])
    span = (chart["x"][1] - chart["x"][0]) or 1
    for phase in curve["phases"]:
        phase["x"] = round(chart["width"] * (phase["step"] - chart["x"][0]) / span, 1)
    return {**curve, "chart": chart}


MANIFEST = "manifest.json"  # lake.release.MANIFEST: the cut's manifest, beside its _stats.json


def manifest(catalog: LakeCatalog, commit: CommittedStage | None) -> dict | None:
    """A committed release's manifest (``seedcoder-release/1``), secret-looking values masked."""
    doc = catalog.attempt_json(commit, MANIFEST) if commit is not None else None
    return redact(doc) if doc is not None else None


def releases_page(catalog: LakeCatalog, tis: dict[str, dict[str, dict]]) -> dict:
    """Every release in the lake or in a DAG run, newest name first: its snapshots, base, stages and model."""
    in_lake = catalog.names("release")
    names = sorted(set(in_lake) | set(tis), reverse=True)
    commits = catalog.many([n for n in names if n in in_lake], "release")
    rows = []
    for name in names:
        cs = commits.get(name, {})
        doc = manifest(catalog, cs.get("release")) or {}
        pre = cs.get("pretrain")
        rows.append({"release": name, "stages": stage_rows(cs, tis.get(name, {}), "release"),
                     "snapshots": [s.get("snapshot") for s in doc.get("snapshots") or []],
                     "base_release": (doc.get("base_release") or {}).get("name"),
                     "files": (doc.get("counts") or {}).get("files"),
                     "loss_last": ((pre.stats.get("metrics") or {}).get("loss_last") if pre else None)})
    return {"releases": rows, "stages": [s.stage for s in stages_of("release")]}


def release_page(catalog: LakeCatalog, name: str, tis: dict[str, dict]) -> dict:
    """One release: its manifest, its stages, its tokenizer and token shards, its model and loss curve, its
    evaluation and the ablation arms cut from it."""
    commits = catalog.stages(name, "release")
    cut, pre, data, tok = (commits.get(s) for s in ("release", "pretrain", "dataset_build", "tokenizer"))
    out: dict[str, Any] = {"release": name, "exists": bool(commits) or bool(tis), "committed": pre is not None,
                           "manifest": manifest(catalog, cut), "stages": stage_rows(commits, tis, "release")}
    if pre is not None:
        m = pre.stats.get("metrics") or {}
        out["pretrain"] = {"attempt": pre.attempt, "committed_at": pre.committed_at,
                           "seconds": pre.stats.get("seconds"), "export": m.get("export"),
                           "numbers": redact({k: m.get(k) for k in (
                               "preset", "engine", "init", "base_release", "zero_stage", "world_size",
                               "global_batch", "steps", "resumed_from_step", "loss_first", "loss_last",
                               "tokens_this_run", "tokens_per_s", "mfu", "parameters") if m.get(k) is not None}),
                           "schedule": m.get("schedule")}
        out["curve"] = loss_curve(catalog, pre)
    if data is not None:
        m = data.stats.get("metrics") or {}
        out["dataset"] = {"attempt": data.attempt, "tokens_per_source": m.get("tokens_per_source") or {},
                          "sources": m.get("sources") or {}, "records_out": data.stats.get("records_out")}
    if tok is not None:
        out["tokenizer"] = {"attempt": tok.attempt, "vocab_size": (tok.stats.get("metrics") or {}).get("vocab_size")}
    if (ev := commits.get("evaluate")) is not None:
        out["evaluation"] = evaluation(ev)
    out["ablation"] = ablation_arms(catalog, name, out.get("evaluation"))
    return out


def evaluation(commit: CommittedStage) -> dict:
    """The committed evaluation of a release's model: pass@k per benchmark, FIM, held-out bits per byte."""
    m = commit.stats.get("metrics") or {}
    results = m.get("results") or {}
    return {"attempt": commit.attempt, "committed_at": commit.committed_at, "headline": m.get("xcom") or {},
            "model": results.get("model"), "pass_k": results.get("pass_k") or [],
            "benchmarks": results.get("benchmarks") or {}, "fim": results.get("fim") or {},
            "bpb": results.get("bpb") or {}}


def heldout_bpb(ev: dict | None) -> float | None:
    return ((ev or {}).get("bpb") or {}).get("overall", {}).get("bits_per_byte")


def ablation_arms(catalog: LakeCatalog, name: str, base: dict | None) -> list[dict]:
    """The ablation DAG's arms cut from release ``name`` (releases ``{name}.{arm}.s{seed}``) with a committed
    evaluation: held-out bits per byte and its delta against this release's own evaluation."""
    from lake.release import parse_arm_release

    arms = {n: parsed for n in catalog.names("release") if (parsed := parse_arm_release(name, n))}
    rows = []
    base_bpb = heldout_bpb(base)
    for arm_name, cs in sorted(catalog.many(list(arms), "release").items()):
        if (ev := cs.get("evaluate")) is None:
            continue
        arm, seed = arms[arm_name]
        bpb = heldout_bpb(evaluation(ev))
        rows.append({"release": arm_name, "arm": arm, "seed": seed, "bits_per_byte": bpb,
                     "delta": bpb - base_bpb if bpb is not None and base_bpb is not None else None})
    return rows
