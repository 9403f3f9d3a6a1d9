"""The dataset, pretrain and evaluate DAGs chained with dag.test() on the local profile: a release of curated
standard-library files -> tokenizer + dataset_build (Spark; one repository held out) -> pretrain (the DeepSpeed
launcher on CPU in .venv-gpu, tiny preset, the local profile's three-phase schedule shortened) -> the MODEL Asset;
the export loads in transformers -> evaluate (HumanEval, MBPP, FIM judged in the sandbox; bits per byte on the
held-out repository) -> the EVALUATED Asset with the headline numbers."""

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
    """Commit a release holding real code: the json, email and unittest packages as three repositories (the
    dataset build below holds out cpython/unittest)."""
    from tests.release_fixtures import commit_release

    stdlib = Path(sysconfig.get_paths()["stdlib"])
    rows = []
    for repo, package in (("cpython/json", "json"), ("cpython/email", "email"), ("cpython/unittest", "unittest")):
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
def test_dataset_pretrain_and_evaluate_dags(tmp_path):
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
                                     "parts": 2, "repo_keep_fraction": 1.0,
                                     "heldout_fraction": 0.2},
                   "pretrain": {"preset": "tiny", "micro_batch_size": 2, "warmup_steps": 4, "phases": phases,
                                "checkpoint_every": 20, "log_every": 4, "threads": 1, "peak_flops": 1e11,
                                "export_dtype": "float32", "scratch_dir": str(tmp_path / "scratch")},
                   "evaluate": {"backend": "transformers", "max_model_len": 512, "sampling": {"max_new_tokens": 32},
                                "benchmarks": [{"name": "humaneval", "max_tasks": 4}, {"name": "mbpp", "max_tasks": 4}],
                                "fim": {"max_tasks": 4, "max_new_tokens": 16},
                                "bpb": {"max_files_per_language": 8, "window": 256}},
                   "sandbox": {"workers": 2}}}))
    env = {k: v for k, v in os.environ.items() if not k.startswith("AIRFLOW") and k != "RANK"}
    env.update(SEEDCODER_CONFIG=str(cfg), SEEDCODER_PROFILE="local", AIRFLOW_HOME=str(home),
               PYSPARK_PYTHON=sys.executable, AIRFLOW__DATABASE__SQL_ALCHEMY_CONN=f"sqlite:///{home}/airflow.db")
    out = subprocess.run([sys.executable, "scripts/pipeline.py", "--release", "2026-10", "--dags",
                          "dataset,pretrain,evaluate", "--airflow-home", str(home)], cwd=REPO, env=env,
                         capture_output=True, text=True, timeout=2100)
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
    heldout = lake.read_table(release, "dataset_build", "heldout").to_pylist()
    assert {r["repo"] for r in heldout} == {"cpython/unittest"}

    assert "DAG evaluate" in out.stdout and "Evaluation of" in out.stdout and "| humaneval | 4 |" in out.stdout
    evaluation = lake.stats(release, "evaluate")["metrics"]
    results = evaluation["results"]
    assert results["model"] == lake.storage.uri(f"{lake.require(release, 'pretrain').prefix}/hf")
    assert {name: b["tasks"] for name, b in results["benchmarks"].items()} == {"humaneval": 4, "mbpp": 4}
    assert set(results["fim"]) == {"single_line", "multi_line"}
    assert set(results["bpb"]) == {"Python", "overall"} and results["bpb"]["Python"]["files"] == 8
    assert evaluation["xcom"]["heldout_bits_per_byte"] == results["bpb"]["overall"]["bits_per_byte"] > 0
    # The task's XCom and the Asset event carry the headline numbers.
    import sqlite3

    db = sqlite3.connect(home / "airflow.db")
    event = db.execute("SELECT e.extra FROM asset_event e JOIN asset a ON a.id = e.asset_id WHERE a.uri = ? "
                       "ORDER BY e.id DESC", ("seedcoder://lake/evaluate",)).fetchone()
    assert json.loads(event[0])["results"] == evaluation["xcom"]
    xcom = db.execute("SELECT value FROM xcom WHERE dag_id = 'evaluate' AND task_id = 'evaluate' "
                      "AND key = 'return_value'").fetchone()
    value = json.loads(xcom[0]) if isinstance(xcom[0], str) else json.loads(xcom[0].decode())
    assert value["results"] == evaluation["xcom"]
