"""The dataset DAG (dag.test() through scripts/pipeline.py) turns a release into loadable shards."""

from __future__ import annotations

import collections
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from dataset_fixtures import commit_table, curated_rows, score_table

from lake import tokens
from lake.stage import Lake, Partition
from lake.token_shards import SOURCES, TokenShards, read_index
from spark_jobs.dataset import fim, samples
from spark_jobs.dataset.documents import decode_document, render
from spark_jobs.dataset.repo_concat import split_document

pytestmark = [pytest.mark.spark, pytest.mark.slow]
REPO = Path(__file__).resolve().parents[3]


def test_dataset_dag_builds_shards_that_decode_to_the_curated_files(tmp_path, capsys):
    from tests.release_fixtures import commit_release

    lake = Lake.at(str(tmp_path / "lake"))
    rows = curated_rows()
    commit_release(lake, "s1", rows, commits=commit_table(rows), scores=score_table(rows, set()))
    r1 = Partition.release("s1")
    cfg = tmp_path / "local.yaml"
    cfg.write_text(json.dumps({
        "profile": "local", "lake": {"root": str(tmp_path / "lake")},
        "spark": {"driver_memory": "1g", "shuffle_partitions": 4},
        "stages": {"tokenizer": {"vocab_size": 1000},
                   "dataset_build": {"seq_len": {"file_level": 512, "repo_level": 8192, "commits": 2048},
                                     "repo_budget_tokens": 60000, "parts": 2, "repo_keep_fraction": 1.0}}}))
    home = tmp_path / "airflow"
    env = {k: v for k, v in os.environ.items() if not k.startswith("AIRFLOW")}
    env.update(SEEDCODER_CONFIG=str(cfg), AIRFLOW_HOME=str(home), PYSPARK_PYTHON=sys.executable,
               AIRFLOW__DATABASE__SQL_ALCHEMY_CONN=f"sqlite:///{home}/airflow.db")
    out = subprocess.run([sys.executable, "scripts/pipeline.py", "--release", "s1", "--dags", "dataset",
                          "--airflow-home", str(home)], cwd=REPO, env=env, capture_output=True, text=True)
    assert out.returncode == 0, out.stdout[-4000:] + out.stderr[-4000:]
    assert "DAG dataset" in out.stdout and "success" in out.stdout

    index = read_index(lake, r1)
    assert index["seq_len"] == 512 and index["sources"]["repo_level"]["seq_len"] == 8192
    tokenizer = tokens.load(lake, r1)
    files = [fim.invert(decode_document(tokenizer, ids)) for ids in TokenShards(lake, r1, "file_level").documents()]
    expected = [r["content"] for r in rows if r["content"] and r["path"] != "app/copied.py"]
    assert collections.Counter(render(d) for d in files) == collections.Counter(expected)
    repos = [split_document(fim.invert(decode_document(tokenizer, ids)))
             for ids in TokenShards(lake, r1, "repo_level").documents()]
    rust = next(r for r in repos if r[0][0].startswith("src/"))
    assert [p for p, _c in rust] == ["src/config.rs", "src/main.rs"]
    stats = lake.stats(r1, "dataset_build")
    assert stats["metrics"]["tokens_per_source"] == {s: index["sources"][s]["num_tokens"] for s in SOURCES}
    assert all(stats["metrics"]["tokens_per_source"][s] > 0 for s in SOURCES)

    assert "Release 's1'" in out.stdout and "shards:" in out.stdout
    assert samples.main(["--release", "s1", "--source", "commits", "-n", "1", "--config", str(cfg)]) == 0
    assert "<commit_message>" in capsys.readouterr().out
