"""A lake for the UI tests, committed through the real StageRun contract (local or S3), and an Airflow metadata
database holding DAG runs of it (the tables of Airflow's own models on SQLite)."""

from __future__ import annotations

import json
import uuid
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta

from lake.stage import OUT_BY_LANGUAGE, Lake, Partition, StageRun

SNAPSHOT = "2026-10"
RELEASE = "2026-q4"
SCORER = "v1"
# (stage, records in, records out, drops, kept per language)
CHAIN = [
    ("crawl", 1200, 1000, {"binary": 120, "vendored": 60, "oversize": 20}, {"Python": 700, "C": 200, "JSON": 100}),
    ("exact_dedup", 1000, 880, {"exact_duplicate_repo": 80, "exact_duplicate_file": 40},
     {"Python": 610, "C": 180, "JSON": 90}),
    ("near_dedup", 880, 800, {"near_duplicate_file": 70, "near_duplicate_repo": 10},
     {"Python": 560, "C": 160, "JSON": 80}),
    ("syntax_filter", 800, 790, {"syntax_error": 10}, {"Python": 555, "C": 155, "JSON": 80}),
    ("rule_filter", 790, 760, {"minified": 5, "encoded_data": 25}, {"Python": 550, "C": 150, "JSON": 60}),
    ("decontaminate", 760, 757, {"contaminated": 3}, {"Python": 547, "C": 150, "JSON": 60}),
    ("pii_redact", 757, 757, {}, {"Python": 547, "C": 150, "JSON": 60}),
    ("quality_filter", 757, 682, {"low_quality_score": 75}, {"Python": 500, "C": 140, "JSON": 42}),
]
CLUSTERS = {"file": {"clusters": 30, "removed": 70, "size_buckets": {"2": 20, "3": 6, "5-8": 4},
                     "largest": [{"size": 8, "kept": "acme/json/json/decoder.py", "example": "fork/json/json/decoder.py"},
                                 {"size": 5, "kept": "acme/mail/email/utils.py", "example": "b/mail/email/utils.py"}]},
            "repo": {"clusters": 2, "removed": 10, "size_buckets": {"2": 1, "9-16": 1},
                     "largest": [{"size": 10, "kept": "acme/json", "example": "fork/json"}]}}
HISTOGRAM = {"threshold": 4.25, "mode": "quantile", "bin_edges": [0.0, 2.5, 5.0, 7.5, 10.0],
             "languages": {"Python": {"files": 547, "dropped": 47, "dropped_share": 0.0859, "mean_score": 6.1,
                                      "hist_all": [20, 60, 300, 167], "hist_kept": [0, 33, 300, 167],
                                      "hist_dropped": [20, 27, 0, 0]},
                           "JSON": {"files": 60, "dropped": 18, "dropped_share": 0.3, "mean_score": 3.2,
                                    "hist_all": [10, 30, 20, 0], "hist_kept": [0, 22, 20, 0],
                                    "hist_dropped": [10, 8, 0, 0]}}}


def commit_stage(lake: Lake, snapshot: str | Partition, stage: str, n_in: int, n_out: int, drops: dict, by_lang: dict,
                 metrics: dict | None = None, files: dict[str, bytes] | None = None) -> None:
    with StageRun(lake, snapshot, stage) as run:
        run.stats.records_in, run.stats.records_out = n_in, n_out
        for reason, n in drops.items():
            run.stats.drop(reason, n)
        run.stats.metrics[OUT_BY_LANGUAGE] = by_lang
        run.stats.metrics.update(metrics or {})
        run.write_bytes("files/part-00000.parquet", b"not read by the UI")
        for name, data in (files or {}).items():
            run.write_bytes(name, data)


def build_lake(lake: Lake, snapshot: str = SNAPSHOT) -> None:
    """The whole chain of one snapshot, the scorer version that curated it, a release cut from it with its model,
    and an older snapshot with only its crawl."""
    for stage, n_in, n_out, drops, by_lang in CHAIN:
        metrics, files = {}, {}
        if stage.endswith("dedup"):
            metrics = {"clusters": CLUSTERS, "candidate_pairs": 123}
        if stage == "crawl":
            metrics = {"api": {"token": "ghp_do_not_show_this", "requests": 12}}
        if stage == "quality_filter":
            metrics = {"threshold": 4.25, "threshold_mode": "quantile", "dropped_share": 0.0991,
                       "scorer_version": SCORER, "previous_scorer_version": None, "decisions_changed": 0}
            files = {"score_histogram.json": json.dumps(HISTOGRAM).encode()}
        if stage == "quality_filter":
            commit_stage(lake, Partition.scorer(SCORER), "oracle_label", 600, 600, {}, {}, {"snapshot": snapshot})
            commit_stage(lake, Partition.scorer(SCORER), "train_scorer", 600, 540, {}, {},
                         {"snapshot": snapshot, "version": SCORER, "mae_heldout": 1.5, "mae_predict_train_mean": 2.46, "n_train": 540, "n_heldout": 60,
                          "oracle": "rules:rules-v1", "mae_heldout_by_language": {"Python": 1.2}})
            commit_stage(lake, snapshot, "score", 757, 757, {}, {}, {"backend": "vllm", "files_per_s": 30.5,
                                                                    "scorer_version": SCORER})
        commit_stage(lake, snapshot, stage, n_in, n_out, drops, by_lang, metrics, files)
    release = Partition.release(RELEASE)
    commit_stage(lake, release, "release", 682, 682, {}, {}, {"snapshots": [snapshot]},
                 files={"manifest.json": json.dumps(MANIFEST).encode()})
    commit_stage(lake, release, "tokenizer", 682, 682, {}, {}, {"vocab_size": 4096})
    commit_stage(lake, release, "dataset_build", 682, 900, {}, {},
                 {"tokens_per_source": {"file_level": 352591, "repo_level": 353092, "commits": 0}})
    commit_stage(lake, release, "pretrain", 1200, STEPS, {}, {},
                 {"preset": "tiny", "steps": STEPS, "loss_first": STEP_LOG[0]["loss"],
                  "loss_last": STEP_LOG[-1]["loss"], "tokens_per_s": 1599.2, "mfu": 0.0012},
                 files={f"metrics/steps-{end:08d}.jsonl": "".join(json.dumps(r) + "\n" for r in STEP_LOG[end - 1000:end])
                        .encode() for end in range(1000, STEPS + 1, 1000)})
    commit_stage(lake, "2026-09", "crawl", 900, 800, {"binary": 100}, {"Python": 800})


MANIFEST = {"format": "seedcoder-release/1", "name": RELEASE, "created_at": "2026-11-03T08:00:00+00:00",
            "input_stage": "quality_filter",
            "snapshots": [{"snapshot": SNAPSHOT, "stage": "quality_filter", "attempt": "a1", "files": 682,
                           "committed_at": "2026-11-02T08:00:00+00:00",
                           "scorer": {"version": SCORER, "threshold": 4.25, "threshold_mode": "scorer"}}],
            "tokenizer": {"policy": "train", "release": RELEASE, "sha256": None}, "base_release": None,
            "config": {"stages": {"release": {"aws_secret_access_key": "do-not-show"}}},
            "counts": {"files": 682, "file_level": 600, "repo_level": 682, "repositories": 40, "commits": 0}}
STEPS = 3000
STEP_LOG = [{"step": i, "phase": "warmup" if i <= 100 else "stable", "loss": 8.0 - 4.0 * i / STEPS, "lr": 3e-4}
            for i in range(1, STEPS + 1)]


# -- the Airflow side -----------------------------------------------------------------------------------------

@contextmanager
def airflow_db(tmp_path):
    """An engine with Airflow's tables (its own ORM metadata) on SQLite, and a session factory over it."""
    from airflow.models import import_all_models
    from airflow.models.base import Base
    from sqlalchemy import create_engine
    from sqlalchemy.orm import sessionmaker

    import_all_models()
    engine = create_engine(f"sqlite:///{tmp_path / 'airflow.db'}")
    Base.metadata.create_all(engine)
    make = sessionmaker(engine, expire_on_commit=False)

    @contextmanager
    def session():
        with make() as s:
            yield s
            s.commit()

    try:
        yield session
    finally:
        engine.dispose()


def add_run(session_factory, dag_id: str, run_id: str, snapshot: str | None, tasks: dict[str, str],
            when: datetime, *, conf: dict | None = None, run_state: str = "success", kind: str = "snapshot") -> None:
    """A DAG run whose resolver task (``kind``: snapshot, release, scorer) returned ``snapshot`` (None: not run yet),
    with task states."""
    from airflow.models.dagrun import DagRun
    from airflow.models.taskinstance import TaskInstance
    from airflow.models.xcom import XComModel
    from sqlalchemy import insert, select

    with session_factory() as s:
        s.execute(insert(DagRun.__table__).values(dag_id=dag_id, run_id=run_id, run_type="manual", state=run_state,
                                                  conf=conf or {}, run_after=when, logical_date=when))
        run_pk = s.execute(select(DagRun.id).where(DagRun.dag_id == dag_id, DagRun.run_id == run_id)).scalar_one()
        for offset, (task_id, state) in enumerate(tasks.items()):
            start = when + timedelta(minutes=offset)
            s.execute(insert(TaskInstance.__table__).values(
                id=uuid.uuid4(), dag_id=dag_id, run_id=run_id, task_id=task_id,
                map_index=-1, pool="default_pool", state=state, try_number=1,
                start_date=start if state not in ("queued", "scheduled") else None,
                end_date=start + timedelta(seconds=30) if state in ("success", "failed") else None))
        if snapshot is not None:
            s.execute(insert(XComModel.__table__).values(dag_run_id=run_pk, task_id=kind, map_index=-1,
                                                         key="return_value", dag_id=dag_id, run_id=run_id,
                                                         value=snapshot, timestamp=when))


# Runs start after the test lake was committed (a failure after a commit is a failure; before it, history).
NOW = datetime.now(UTC).replace(microsecond=0) + timedelta(hours=1)
