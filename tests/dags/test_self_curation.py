"""The model curates its own data: one turn of the loop through the DAGs on the local profile, at tiny size.

    snapshot (filtered) -> scorer v1 (tiny base, rule-teacher labels) -> quality with v1 -> release r1
    -> dataset + pretrain + evaluate on r1 -> scorer v2 whose base is r1's pretrained model (same labels as v1)
    -> quality of the same snapshot with v2 -> release r2 (base r1, tokenizer pinned) -> dataset + pretrain on r2,
       continued from r1's model

Every step is a DAG run through scripts/pipeline.py (``dag.test()``, the local profile's operators). The test
prints the turn's numbers: scorer v1 vs v2 held-out MAE (same held-out labels) and the share of files whose
keep/drop decision changed between v1 and v2.

Turn 0 also checks what the dataset, pretrain and evaluate DAGs promise on their own: a repository held out of
training (the evaluation's bits per byte are on it), the report's three-phase schedule (file-level rows, then
repository-level rows in the continued phases), a Hugging Face export that loads in transformers, and the
evaluation (HumanEval, MBPP, FIM judged in the sandbox) in its task's XCom and its Asset event.
"""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
import sysconfig
from pathlib import Path

import pyarrow as pa
import pytest

from lake import release as rel
from lake.stage import Lake, Partition
from tests.training.quality.corpus import commit_input, disk_files, files_table

pytestmark = [pytest.mark.spark, pytest.mark.slow]
REPO = Path(__file__).resolve().parents[2]
GPU_PYTHON = REPO / ".venv-gpu" / "bin" / "python"
SNAPSHOT = "2026-10"


def filtered_snapshot() -> pa.Table:
    """Real files as the filters leave them: the quality corpus (stdlib, C headers, JSON data, hostile cases) and two
    standard-library packages as repositories with imports between their files."""
    stdlib = Path(sysconfig.get_paths()["stdlib"])
    tables = [files_table(disk_files(n_python=40, n_c=10, n_json=10))]
    for package in ("json", "email"):
        pairs = [(str(p.relative_to(stdlib)), p.read_text(encoding="utf-8"))
                 for p in sorted((stdlib / package).rglob("*.py"))[:12]]
        tables.append(files_table(pairs, repo=f"cpython/{package}", commit="c0ffee"))
    return pa.concat_tables(tables)


def config(tmp_path: Path) -> Path:
    phases = [{"name": "regular", "steps": 16, "lr": 2e-3, "fim_rate": 0.5, "mixture": {"file_level": 1.0}},
              {"name": "continued_high_lr", "steps": 4, "lr": 2e-3 / 10**0.5, "fim_rate": 0.1,
               "mixture": {"repo_level": 1.0}},
              {"name": "continued_low_lr", "steps": 4, "lr": 2e-4, "fim_rate": 0.1, "mixture": {"repo_level": 1.0}}]
    continued = [{"name": "continued", "steps": 8, "lr": 6e-4, "fim_rate": 0.5, "mixture": {"file_level": 1.0}}]
    path = tmp_path / "local.yaml"
    path.write_text(json.dumps({
        "profile": "local", "lake": {"root": str(tmp_path / "lake")},
        "spark": {"driver_memory": "1g", "shuffle_partitions": 4},
        "stages": {
            "oracle_label": {"sample_size": 60, "shard_size": 30},
            "train_scorer": {"base_model": str(tmp_path / "tiny_base"), "max_tokens": 64, "test_fraction": 0.25,
                             "batch_size": 8, "learning_rate": 1e-3, "warmup_steps": 2, "calibration_size": 40},
            "score": {"backend": "transformers", "max_tokens": 64, "shard_rows": 64},
            "release": {"output_partitions": 2},
            "tokenizer": {"vocab_size": 600},
            # heldout seed 1 at 0.2 holds out cpython/json alone (spark_jobs/dataset/heldout.py's hash)
            "dataset_build": {"seq_len": {"file_level": 128, "repo_level": 512, "commits": 512}, "parts": 2,
                              "repo_keep_fraction": 1.0, "heldout_fraction": 0.2, "heldout_seed": 1},
            "pretrain": {"preset": "tiny", "micro_batch_size": 2, "warmup_steps": 2, "phases": phases,
                         "continue_phases": continued, "checkpoint_every": 100, "log_every": 4, "threads": 1,
                         "peak_flops": 1e11, "export_dtype": "float32", "scratch_dir": str(tmp_path / "scratch")},
            "evaluate": {"backend": "transformers", "max_model_len": 512, "sampling": {"max_new_tokens": 32},
                         "benchmarks": [{"name": "humaneval", "max_tasks": 4}, {"name": "mbpp", "max_tasks": 4}],
                         "fim": {"max_tasks": 4, "max_new_tokens": 16},
                         "bpb": {"max_files_per_language": 8, "window": 256}},
            "sandbox": {"workers": 2},
        }}))
    return path


def asset_events(db: Path) -> dict[str, list[dict]]:
    """Every Asset event's extra in the Airflow metadata DB, per Asset URI, oldest first."""
    with sqlite3.connect(db) as conn:
        rows = conn.execute("SELECT a.uri, e.extra FROM asset_event e JOIN asset a ON a.id = e.asset_id "
                            "ORDER BY e.id").fetchall()
    out: dict[str, list[dict]] = {}
    for uri, extra in rows:
        out.setdefault(uri, []).append(json.loads(extra) if isinstance(extra, str) else extra)
    return out


def pipeline(tmp_path: Path, cfg: Path, *args: str) -> str:
    home = tmp_path / "airflow"
    env = {k: v for k, v in os.environ.items() if not k.startswith("AIRFLOW") and k != "RANK"}
    env.update(SEEDCODER_CONFIG=str(cfg), SEEDCODER_PROFILE="local", AIRFLOW_HOME=str(home),
               PYSPARK_PYTHON=sys.executable, AIRFLOW__DATABASE__SQL_ALCHEMY_CONN=f"sqlite:///{home}/airflow.db")
    out = subprocess.run([sys.executable, "scripts/pipeline.py", "--snapshot", SNAPSHOT, "--airflow-home", str(home),
                          *args], cwd=REPO, env=env, capture_output=True, text=True, timeout=1800)
    assert out.returncode == 0, out.stdout[-4000:] + out.stderr[-6000:]
    return out.stdout


def check_release_model_and_evaluation(lake: Lake, db_path: Path, out: str, stats: dict) -> None:
    """Release r1's dataset, pretrain and evaluate DAGs did what each promises (the checks of the former
    tests/dags/test_pretrain_dag.py, which ran the same three DAGs on its own release)."""
    release = Partition.release("r1")
    metrics = stats["metrics"]
    assert stats["records_out"] == 24 and metrics["loss_last"] < metrics["loss_first"]
    assert [p["seq_len"] for p in metrics["schedule"]] == [128, 512, 512]
    assert [p["phase"] for p in metrics["schedule"]] == ["regular", "continued_high_lr", "continued_low_lr"]
    model = lake.require(release, "pretrain").prefix
    hf = lake.storage.local_path(f"{model}/hf")
    assert f"model:  {lake.storage.uri(str(model))}/hf" in out
    check = subprocess.run([str(GPU_PYTHON), "-c", (
        "import sys; from transformers import AutoModelForCausalLM, AutoTokenizer; "
        "t = AutoTokenizer.from_pretrained(sys.argv[1]); m = AutoModelForCausalLM.from_pretrained(sys.argv[1]); "
        "print(m.config.vocab_size == len(t))"), str(hf)], capture_output=True, text=True, timeout=300)
    assert check.stdout.strip() == "True", check.stderr[-2000:]
    heldout = lake.read_table(release, "dataset_build", "heldout").to_pylist()
    assert {r["repo"] for r in heldout} == {"cpython/json"}

    assert "DAG evaluate" in out and "Evaluation of" in out and "| humaneval | 4 |" in out
    evaluation = lake.stats(release, "evaluate")["metrics"]
    results = evaluation["results"]
    assert results["model"] == lake.storage.uri(f"{model}/hf")
    assert {name: b["tasks"] for name, b in results["benchmarks"].items()} == {"humaneval": 4, "mbpp": 4}
    assert set(results["fim"]) == {"single_line", "multi_line"}
    held_python = [r for r in heldout if r["language"] == "Python"]
    assert held_python and set(results["bpb"]) == {"Python", "overall"}
    assert results["bpb"]["Python"]["files"] == min(8, len(held_python))  # bpb.max_files_per_language
    assert evaluation["xcom"]["heldout_bits_per_byte"] == results["bpb"]["overall"]["bits_per_byte"] > 0
    # The task's XCom and the Asset event carry the headline numbers.
    with sqlite3.connect(db_path) as db:
        event = db.execute("SELECT e.extra FROM asset_event e JOIN asset a ON a.id = e.asset_id WHERE a.uri = ? "
                           "ORDER BY e.id DESC", ("seedcoder://lake/evaluate",)).fetchone()
        xcom = db.execute("SELECT value FROM xcom WHERE dag_id = 'evaluate' AND task_id = 'evaluate' "
                          "AND key = 'return_value'").fetchone()
    assert json.loads(event[0])["results"] == evaluation["xcom"]
    value = json.loads(xcom[0]) if isinstance(xcom[0], str) else json.loads(xcom[0].decode())
    assert value["results"] == evaluation["xcom"]


@pytest.mark.timeout(3600)
def test_one_turn_of_the_model_curating_its_own_data_through_the_dags(tmp_path):
    if not GPU_PYTHON.exists():
        pytest.skip(".venv-gpu (torch, deepspeed) is not installed")
    cfg = config(tmp_path)
    lake = Lake.at(str(tmp_path / "lake"))
    commit_input(lake, SNAPSHOT, filtered_snapshot())

    # Turn 0: scorer v1 from the tiny base, the snapshot curated with it, release r1 and its model.
    out = pipeline(tmp_path, cfg, "--release", "r1", "--dags", "scorer,quality,release,dataset,pretrain,evaluate")
    v1_curation = lake.stats(SNAPSHOT, "quality_filter")["metrics"]
    assert v1_curation["scorer_version"] == "v1"
    r1 = rel.read_manifest(lake, "r1")
    assert r1.snapshots[0].scorer.version == "v1" and r1.tokenizer.policy == "train"
    r1_stats = lake.stats(Partition.release("r1"), "pretrain")
    r1_model = r1_stats["metrics"]
    assert r1_model["init"] == "scratch"
    check_release_model_and_evaluation(lake, tmp_path / "airflow" / "airflow.db", out, r1_stats)

    # Turn 1: scorer v2 whose base is r1's model, on v1's labels; the same snapshot scored by v2; release r2.
    # (one main command per turn: the scorer and quality DAGs, then the release's DAGs, in chain order)
    out = pipeline(tmp_path, cfg, "--scorer-version", "v2", "--scorer-base", "release:r1", "--scorer-labels-from", "v1",
                   "--release", "r2", "--base-release", "r1", "--tokenizer", "pin",
                   "--dags", "scorer,quality,release,dataset,pretrain")
    v1 = lake.stats(Partition.scorer("v1"), "train_scorer")["metrics"]
    v2 = lake.stats(Partition.scorer("v2"), "train_scorer")["metrics"]
    assert v2["base_model"].startswith("release:r1 (") and v2["labels_from"] == "v1"
    assert v1["n_heldout"] == v2["n_heldout"], "the same held-out labels"
    v1_heldout = lake.read_table(Partition.scorer("v1"), "train_scorer", "heldout").sort_by("id")
    v2_heldout = lake.read_table(Partition.scorer("v2"), "train_scorer", "heldout").sort_by("id")
    assert v1_heldout.column("id").equals(v2_heldout.column("id"))
    assert v1_heldout.column("label").equals(v2_heldout.column("label"))
    v2_curation = lake.stats(SNAPSHOT, "quality_filter")["metrics"]
    assert (v2_curation["scorer_version"], v2_curation["previous_scorer_version"]) == ("v2", "v1")
    assert v2_curation["threshold"] == v2["threshold"]

    r2 = rel.read_manifest(lake, "r2")
    assert r2.snapshots[0].scorer.version == "v2" and r2.base_release.name == "r1"
    assert r2.tokenizer.policy == "pin" and r2.tokenizer.release == "r1"
    assert r2.base_release.model == rel.model_uri(lake, "r1")
    r2_model = lake.stats(Partition.release("r2"), "pretrain")["metrics"]
    assert (r2_model["init"], r2_model["base_release"]) == ("base_release", "r1")
    assert "Release 'r2'" in out and f"model:  {rel.model_uri(lake, 'r2')}" in out
    # r1 is immutable: its manifest still says v1 curated the snapshot.
    assert rel.read_manifest(lake, "r1") == r1
    # The Assets' events name the release (and the model's location) for the DAGs downstream (evaluation, RL).
    extras = asset_events(tmp_path / "airflow" / "airflow.db")
    assert extras["seedcoder://lake/release"][-1]["release"] == "r2"
    assert extras["seedcoder://lake/release"][-1]["manifest"] == rel.manifest_uri(lake, "r2")
    model_event = extras["seedcoder://lake/pretrain"][-1]
    assert (model_event["release"], model_event["model"]) == ("r2", rel.model_uri(lake, "r2"))
    assert (model_event["init"], model_event["base_release"]) == ("base_release", "r1")
    assert extras["seedcoder://lake/models/scorer"][-1]["scorer"] == "v2"

    numbers = {"scorer_v1": {"mae_heldout": v1["mae_heldout"], "mae_predict_mean": v1["mae_predict_train_mean"],
                             "threshold": v1["threshold"], "base": v1["base_model"]},
               "scorer_v2": {"mae_heldout": v2["mae_heldout"], "mae_predict_mean": v2["mae_predict_train_mean"],
                             "threshold": v2["threshold"], "base": v2["base_model"]},
               "heldout_files": v2["n_heldout"], "train_files": v2["n_train"],
               "files_scored": lake.stats(SNAPSHOT, "score")["records_out"],
               "decisions_changed": v2_curation["decisions_changed"],
               "decisions_changed_share": v2_curation["decisions_changed_share"],
               "dropped_share_v1": v1_curation["dropped_share"], "dropped_share_v2": v2_curation["dropped_share"],
               "r1_loss": [r1_model["loss_first"], r1_model["loss_last"]],
               "r2_loss": [r2_model["loss_first"], r2_model["loss_last"]]}
    print("self-curation turn:", json.dumps(numbers, indent=2))
