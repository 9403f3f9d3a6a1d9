"""Held-out repositories: the Spark rule equals the Python one; their files leave the shards for ``heldout``."""

from __future__ import annotations

from pathlib import Path

import pytest
from dataset_fixtures import commit_table, curated_rows

from lake.config import load_config
from lake.stage import Partition, StageRun
from lake.token_shards import TokenShards
from spark_jobs.dataset import build
from spark_jobs.dataset import tokenizer as tok
from spark_jobs.dataset.documents import decode_document, render
from spark_jobs.dataset.heldout import heldout_column, is_heldout

pytestmark = pytest.mark.spark
REPO = Path(__file__).resolve().parents[3]


def test_the_spark_rule_is_the_python_rule(spark):
    repos = [f"org{i}/repo-{i * 7}" for i in range(300)] + ["cpython/json", "ünïcode/ repo"]
    frame = spark.createDataFrame([(r,) for r in repos], "repo string")
    for seed, fraction in ((0, 0.1), (3, 0.5), (0, 0.0)):
        spark_side = {r["repo"] for r in frame.where(heldout_column(frame["repo"], seed=seed, fraction=fraction))
                      .collect()}
        assert spark_side == {r for r in repos if is_heldout(r, seed=seed, fraction=fraction)}
    assert 10 < sum(is_heldout(r, seed=0, fraction=0.1) for r in repos) < 60


def test_held_out_repositories_leave_the_shards(tmp_path, spark):
    rows = curated_rows()
    fraction = 0.5
    held = {r["repo"] for r in rows if is_heldout(r["repo"], seed=0, fraction=fraction)}
    assert held and held != {r["repo"] for r in rows}  # the fixture's repos split both ways at this fraction
    cfg = load_config(REPO / "config" / "local.yaml", overrides={"lake": {"root": str(tmp_path)}, "stages": {
        "tokenizer": {"vocab_size": 900},
        "dataset_build": {"seq_len": {"file_level": 256, "repo_level": 1024, "commits": 512}, "parts": 2,
                          "shard_tokens": 2048, "repo_budget_tokens": 60_000,
                          "heldout_fraction": fraction, "fim_rate": {"file_level": 0.0, "repo_level": 0.0,
                                                                     "commits": 0.0}}}})
    lake = cfg.open_lake()
    from tests.release_fixtures import commit_release

    release = Partition.release("r1")
    commit_release(lake, "r1", rows, commits=commit_table(rows))
    tok.run(lake, "r1", cfg.stage("tokenizer", tok.TokenizerConfig))
    stage_cfg = cfg.stage("dataset_build", build.DatasetBuildConfig)
    with StageRun(lake, release, "dataset_build") as run:
        stats = build.build(run, cfg, stage_cfg)
    heldout = lake.read_table(release, "dataset_build", "heldout").to_pylist()
    assert {r["repo"] for r in heldout} == held
    assert sorted(r["id"] for r in heldout) == sorted(r["id"] for r in rows if r["repo"] in held)
    assert stats["metrics"]["heldout"] == {"fraction": fraction, "seed": 0, "files": len(heldout),
                                           "repos": len(held)}
    from lake import tokens

    tokenizer = tokens.load(lake, release)
    trained = {render(decode_document(tokenizer, ids)) for ids in TokenShards(lake, release, "file_level").documents()}
    held_texts = {r["content"] for r in heldout if r["content"]}
    assert trained and not (trained & held_texts)
    commits = [render(decode_document(tokenizer, ids)) for ids in TokenShards(lake, release, "commits").documents()]
    assert not any("Add a name to the User model" in c for c in commits)  # acme/app's commit (held out)
