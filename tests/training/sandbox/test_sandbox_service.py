"""The HTTP service, started as production starts it (``python -m training.sandbox serve``), spoken to over real
HTTP in SandboxFusion's ``run_code`` shapes, the way verl's sandbox_fusion reward client reads them."""

from __future__ import annotations

import socket
import subprocess
import sys
import time

import pytest
import requests
from sandbox_helpers import leftovers, needs_isolation

pytestmark = needs_isolation


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def service():
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "training.sandbox", "--workers", "2", "serve", "--port", str(port)],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(600):
            try:
                if requests.get(f"{url}/health", timeout=1).ok:
                    break
            except requests.ConnectionError:
                pass
            if proc.poll() is not None:
                raise RuntimeError(f"the service exited: {proc.stdout.read()}")
            time.sleep(0.1)
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def verl_style_reward(response: dict) -> float:
    """What verl's sandbox_fusion client checks: the API status, then the run's status and exit code."""
    if response["status"] == "SandboxError":
        return -1.0
    run = response.get("run_result") or {}
    return 1.0 if response["status"] == "Success" and run.get("status") == "Finished" and run.get("return_code") == 0 \
        else 0.0


def test_run_code_speaks_sandboxfusion(service):
    body = {"code": "print(input()[::-1])", "language": "python", "stdin": "abc", "run_timeout": 5,
            "compile_timeout": 5, "memory_limit_MB": 256, "files": {}}
    response = requests.post(f"{service}/run_code", json=body, timeout=60).json()
    assert set(response) >= {"status", "message", "compile_result", "run_result", "executor_pod_name", "files"}
    assert response["status"] == "Success" and response["compile_result"] is None
    assert set(response["run_result"]) == {"status", "execution_time", "return_code", "stdout", "stderr"}
    assert response["run_result"]["stdout"] == "cba\n" and verl_style_reward(response) == 1.0


def test_compiled_failed_and_timed_out_runs(service):
    cpp = {"code": "#include <cstdio>\nint main() { puts(\"hi\"); return 2; }", "language": "cpp"}
    response = requests.post(f"{service}/run_code", json=cpp, timeout=120).json()
    assert response["status"] == "Failed" and response["compile_result"]["status"] == "Finished"
    assert response["compile_result"]["return_code"] == 0 and response["run_result"]["return_code"] == 2
    assert verl_style_reward(response) == 0.0
    spin = {"code": "while True: pass", "language": "python", "run_timeout": 1}
    response = requests.post(f"{service}/run_code", json=spin, timeout=60).json()
    assert response["status"] == "Failed" and response["run_result"]["status"] == "TimeLimitExceeded"
    assert leftovers() == []


def test_bad_requests_are_sandbox_errors_not_crashes(service):
    for body in ({"code": "x", "language": "cobol"}, {"code": "x", "language": "python", "fetch_files": ["a"]}):
        response = requests.post(f"{service}/run_code", json=body, timeout=60).json()
        assert response["status"] == "SandboxError" and response["message"]
    assert requests.post(f"{service}/run_code", json={"language": "python"}, timeout=60).status_code == 422


def test_run_tests_returns_the_verdict(service):
    body = {"code": "def add(a, b):\n    return a + b\n", "language": "python",
            "tests": {"kind": "asserts", "code": "assert add(2, 3) == 5", "entry_point": "add"}}
    result = requests.post(f"{service}/run_tests", json=body, timeout=60).json()
    assert result["verdict"] == "passed" and result["timings"]["total"] > 0
    body["tests"]["code"] = "assert add(2, 3) == 6"
    assert requests.post(f"{service}/run_tests", json=body, timeout=60).json()["verdict"] == "wrong_answer"
    health = requests.get(f"{service}/health", timeout=10).json()
    assert health["isolation"] == "full" and health["workers"] == 2 and health["judged"] >= 2


def test_the_client_gets_the_same_verdicts_as_a_local_pool(service):
    import asyncio

    from training.sandbox import Tests
    from training.sandbox.client import SandboxClient

    requests = [{"code": f"def add(a, b):\n    return a + b + {i % 2}\n", "tests": Tests(code="assert add(1, 1) == 2")}
                for i in range(6)]
    results = asyncio.run(SandboxClient(service, concurrency=3).run_many(requests))
    assert [r.verdict for r in results] == ["passed", "wrong_answer"] * 3
    down = asyncio.run(SandboxClient("http://127.0.0.1:9", retries=1).run_many(requests[:1]))
    assert down[0].status == "SandboxError" and down[0].verdict == "sandbox_error"
