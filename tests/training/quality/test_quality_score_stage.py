"""Stage score: every file scored exactly once, deterministic, and resumable after a SIGKILL."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import yaml

pytest.importorskip("torch")

from lake.config import REPO_ROOT  # noqa: E402
from tests.training.quality.conftest import SNAPSHOT  # noqa: E402
from training.quality import score  # noqa: E402
from training.quality.config import ScoreConfig  # noqa: E402


def cfg_for(model: Path, **kw) -> ScoreConfig:
    return ScoreConfig(model=str(model), backend="transformers", max_tokens=64, shard_rows=8, **kw)


def scores_by_id(lake) -> dict[str, float]:
    table = lake.read_table(SNAPSHOT, "score", "scores")
    ids = table.column("id").to_pylist()
    assert len(ids) == len(set(ids)), "a file was scored twice"
    return dict(zip(ids, table.column("score").to_pylist(), strict=True))


def test_every_file_is_scored_once_and_reruns_are_identical(input_lake, corpus, scorer_model):
    stats = score.run(input_lake, SNAPSHOT, cfg_for(scorer_model))
    first = scores_by_id(input_lake)
    assert set(first) == set(corpus.column("id").to_pylist())
    assert stats["records_in"] == stats["records_out"] == corpus.num_rows
    assert stats["metrics"]["backend"] == "transformers" and stats["metrics"]["tokens_per_s"] > 0
    table = input_lake.read_table(SNAPSHOT, "score", "scores")
    assert all(t == 64 for t, cut in zip(table.column("num_tokens").to_pylist(),
                                         table.column("truncated").to_pylist(), strict=True) if cut)
    assert stats["metrics"]["files_truncated"] == sum(table.column("truncated").to_pylist()) > 0
    score.run(input_lake, SNAPSHOT, cfg_for(scorer_model), resume=False)
    assert scores_by_id(input_lake) == first


def test_missing_scorer_version_is_a_clear_error(input_lake):
    with pytest.raises(FileNotFoundError, match="scorer version 'v9' does not exist.*scorer DAG"):
        score.run(input_lake, SNAPSHOT, ScoreConfig(backend="transformers", scorer_version="v9"))


def done_shards(lake_root: Path) -> list[Path]:
    return [p for p in lake_root.glob(f"snapshot={SNAPSHOT}/score/attempt=*/_shards/*.done")
            if p.name != "_input.done" and not p.name.startswith(".")]  # not the lake's temporary files


@pytest.mark.timeout(600)
def test_sigkill_mid_run_then_resume_scores_every_file_exactly_once(input_lake, corpus, scorer_model, tmp_path):
    lake_root = Path(input_lake.root)
    config = tmp_path / "cfg.yaml"
    config.write_text(yaml.safe_dump({"profile": "local", "lake": {"root": str(lake_root)},
                                      "stages": {"score": cfg_for(scorer_model).model_dump(mode="json")}}))
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT), "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "training.quality.score", "--snapshot", SNAPSHOT,
                             "--config", str(config)], cwd=REPO_ROOT, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 500
        while len(done_shards(lake_root)) < 2 and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.005)
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.wait()
    assert input_lake.commit_info(SNAPSHOT, "score") is None, "the run finished before it could be killed"
    killed_at = len(done_shards(lake_root))
    assert killed_at >= 2

    stats = score.run(input_lake, SNAPSHOT, cfg_for(scorer_model))
    metrics = stats["metrics"]
    assert metrics["shards_adopted_from_killed_run"] == killed_at
    assert metrics["shards_scored_this_run"] == metrics["shards"] - killed_at
    resumed = scores_by_id(input_lake)
    assert set(resumed) == set(corpus.column("id").to_pylist()) and stats["records_out"] == corpus.num_rows

    score.run(input_lake, SNAPSHOT, cfg_for(scorer_model), resume=False)
    clean = scores_by_id(input_lake)
    np.testing.assert_allclose([resumed[i] for i in sorted(clean)], [clean[i] for i in sorted(clean)], atol=1e-5)
