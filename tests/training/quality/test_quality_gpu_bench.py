"""benchmarks/gpu_scoring.py stays runnable: its --tiny mode exercises every torch method on CPU."""

import json
import sys
from pathlib import Path

import pytest

pytest.importorskip("torch")
REPO = Path(__file__).resolve().parents[3]


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_gpu_scoring_script_runs_tiny_on_cpu(tmp_path, monkeypatch):
    monkeypatch.syspath_prepend(str(REPO / "benchmarks"))
    import gpu_scoring

    out = tmp_path / "result.json"
    assert gpu_scoring.main(["--tiny", "--no-vllm", "--files", "12", "--out", str(out)]) == 0
    report = json.loads(out.read_text())
    methods = {r["method"]: r for r in report["results"]}
    assert set(methods) == {"uniform_full", "padded", "bucketed", "packed"}
    assert methods["packed"]["padding_share"] == 0.0
    assert all(r["tokens"] > 0 and r["pct_of_matmul"] >= 0 for r in report["results"])
    assert report["tokens"] == methods["bucketed"]["tokens"]
    del sys.modules["gpu_scoring"]
