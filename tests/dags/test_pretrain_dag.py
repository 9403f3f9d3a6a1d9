"""The dataset and pretrain DAGs chained with dag.test() on the local profile: a release of curated standard-library
files -> tokenizer + dataset_build (Spark) -> pretrain (the DeepSpeed launcher on CPU in .venv-gpu, tiny preset, the
local profile's three-phase schedule shortened) -> the MODEL Asset; the export loads in transformers."""

import json
import os
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

from lake.languages import language_of
from lake.schemas import file_id, sha256_hex
from lake.stage import Lake, Partition

pytestmark = [pytest.mark.spark, pytest.mark.slow]
REPO = Path(__file__).resolve().parents[2]
GPU_PYTHON = REPO / ".venv-gpu" / "bin" / "python"


def curated_stdlib(lake: Lake, release: str) -> int:
    """Commit a release holding real code: the json and email packages as two repositories."""
    from tests.release_fixtures import commit_release

    stdlib = Path(sysconfig.get_paths()["stdlib"])
    rows = []
    for repo, package in (("cpython/json", "json"), ("cpython/email", "email")):
        commit = sha256_hex(repo.encode())[:40]
        for path in sorted((stdlib / package).rglob("*.py"))[:25]:
            rel, text = str(path.relative_to(stdlib)), path.read_text(encoding="utf-8")
            data = text.encode()
            rows.append({"id": file_id(repo, commit, rel), "repo": repo, "commit": commit, "path": rel,
                         "language": language_of(rel) or "Text", "license": "PSF-2.0", "stars": 100, "forks": 10,
                         "repo_created_at": None, "content": text, "sha256": sha256_hex(data),
                         "size_bytes": len(data), "num_lines": text.count("\n") + 1})
    commit_release(lake, release, rows)
    return len(rows)


@pytest.mark.timeout(2400)  # Spark + a first DeepSpeed init (JIT build of its CPU comm op) on 2 shared cores
def test_dataset_then_pretrain_dags_train_on_the_built_shards(tmp_path):
    if not GPU_PYTHON.exists():
        pytest.skip(".venv-gpu (torch, deepspeed) is not installed")
    lake = Lake.at(str(tmp_path / "lake"))
    curated_stdlib(lake, "2026-10")
    home = tmp_path / "airflow"
    cfg = tmp_path / "local.yaml"
    phases = [{"name": "regular", "steps": 24, "lr": 1e-3, "fim_rate": 0.5, "mixture": {"file_level": 1.0}},
              {"name": "continued_high_lr", "steps": 8, "lr": 1e-3 / 10**0.5, "fim_rate": 0.1,
               "mixture": {"repo_level": 1.0}},
              {"name": "continued_low_lr", "steps": 8, "lr": 1e-4, "fim_rate": 0.1, "mixture": {"repo_level": 1.0}}]
    cfg.write_text(json.dumps({
        "profile": "local", "lake": {"root": str(tmp_path / "lake")},
        "spark": {"driver_memory": "1g", "shuffle_partitions": 4},
        "stages": {"tokenizer": {"vocab_size": 2000},
                   "dataset_build": {"seq_len": {"file_level": 256, "repo_level": 1024, "commits": 1024},
                                     "parts": 2, "repo_keep_fraction": 1.0},
                   "pretrain": {"preset": "tiny", "micro_batch_size": 2, "warmup_steps": 4, "phases": phases,
                                "checkpoint_every": 20, "log_every": 4, "threads": 1, "peak_flops": 1e11,
                                "export_dtype": "float32", "scratch_dir": str(tmp_path / "scratch")}}}))
    env = {k: v for k, v in os.environ.items() if not k.startswith("AIRFLOW") and k != "RANK"}
    env.update(SEEDCODER_CONFIG=str(cfg), SEEDCODER_PROFILE="local", AIRFLOW_HOME=str(home),
               PYSPARK_PYTHON=sys.executable, AIRFLOW__DATABASE__SQL_ALCHEMY_CONN=f"sqlite:///{home}/airflow.db")
    out = subprocess.run([sys.executable, "scripts/pipeline.py", "--release", "2026-10", "--dags",
                          "dataset,pretrain", "--airflow-home", str(home)], cwd=REPO, env=env, capture_output=True,
                         text=True, timeout=1800)
    assert out.returncode == 0, out.stdout[-4000:] + out.stderr[-4000:]
    assert "DAG pretrain" in out.stdout and "success" in out.stdout
    release = Partition.release("2026-10")
    stats = lake.stats(release, "pretrain")
    metrics = stats["metrics"]
    assert stats["records_out"] == 40 and metrics["loss_last"] < metrics["loss_first"]
    assert [p["seq_len"] for p in metrics["schedule"]] == [256, 1024, 1024]
    hf = lake.storage.local_path(f"{lake.require(release, 'pretrain').prefix}/hf")
    assert f"model:  {lake.storage.uri(str(lake.require(release, 'pretrain').prefix))}/hf" in out.stdout
    check = subprocess.run([str(GPU_PYTHON), "-c", (
        "import sys; from transformers import AutoModelForCausalLM, AutoTokenizer; "
        "t = AutoTokenizer.from_pretrained(sys.argv[1]); m = AutoModelForCausalLM.from_pretrained(sys.argv[1]); "
        "print(m.config.vocab_size == len(t))"), str(hf)], capture_output=True, text=True, timeout=300)
    assert check.stdout.strip() == "True", check.stderr[-2000:]
