"""Oracle backends: the OpenAI-compatible client against a real HTTP server on loopback, and the rule oracle."""

from __future__ import annotations

import json
import logging
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from training.quality.config import OracleLabelConfig
from training.quality.oracles import OpenAIOracle, RateRequest, RuleOracle, make_oracle


class FakeEndpoint:
    """A chat-completions server whose behaviour per prompt is scripted: ``fail:503:2`` fails twice, etc."""

    def __init__(self, delay_s: float = 0.05):
        self.delay_s = delay_s
        self.in_flight = 0
        self.max_in_flight = 0
        self.calls: dict[str, int] = {}
        self.lock = threading.Lock()
        endpoint = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                prompt = body["messages"][0]["content"]
                with endpoint.lock:
                    endpoint.calls[prompt] = endpoint.calls.get(prompt, 0) + 1
                    attempt = endpoint.calls[prompt]
                    endpoint.in_flight += 1
                    endpoint.max_in_flight = max(endpoint.max_in_flight, endpoint.in_flight)
                try:
                    time.sleep(endpoint.delay_s)
                finally:
                    # Counted out before the answer leaves: once the client has it, it may send its next request
                    # before this thread runs again, and that is not a fourth request in flight.
                    with endpoint.lock:
                        endpoint.in_flight -= 1
                self.respond(prompt, attempt, body)

            def respond(self, prompt, attempt, body):
                if prompt.startswith("fail:"):
                    _, code, times = prompt.split(":")
                    if attempt <= int(times):
                        self.send_error(int(code))
                        return
                if prompt == "garbage":
                    payload = b"{not json"
                else:
                    payload = json.dumps({"choices": [{"message": {
                        "content": f"Looks fine ({body['model']}). Rating: [[{len(prompt) % 11}]]"}}]}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/v1"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.server.shutdown()
        self.server.server_close()


def requests(prompts):
    return [RateRequest(prompt=p, language="Python", content=p) for p in prompts]


def test_answers_come_back_in_order_with_bounded_concurrency():
    with FakeEndpoint(delay_s=0.05) as server:
        oracle = OpenAIOracle(server.url, "m", concurrency=3, backoff_s=0.01)
        prompts = [f"p{i}" * (i + 1) for i in range(12)]
        answers = oracle.answer(requests(prompts))
    assert [a.split("[[")[1] for a in answers] == [f"{len(p) % 11}]]" for p in prompts]
    assert 1 <= server.max_in_flight <= 3


def test_transient_errors_are_retried_and_hard_errors_are_not():
    with FakeEndpoint(delay_s=0.0) as server:
        oracle = OpenAIOracle(server.url, "m", concurrency=2, max_retries=3, backoff_s=0.01)
        answers = oracle.answer(requests(["fail:503:2", "fail:429:1", "fail:400:1", "fail:500:9", "garbage"]))
    assert answers[0].endswith("]]") and answers[1].endswith("]]")
    assert answers[2:] == [None, None, None]
    assert server.calls["fail:503:2"] == 3
    assert server.calls["fail:400:1"] == 1          # a client error is not retried
    assert server.calls["fail:500:9"] == 4          # 1 + max_retries, then given up
    assert oracle.failures == 3


def test_unreachable_endpoint_fails_each_request_without_raising():
    oracle = OpenAIOracle("http://127.0.0.1:9/v1", "m", max_retries=1, backoff_s=0.01, timeout_s=2)
    assert oracle.answer(requests(["a", "b"])) == [None, None]


def test_bad_endpoint_url_is_a_clear_error():
    with pytest.raises(ValueError, match="must be an http"):
        OpenAIOracle("vllm-oracle:8000", "m")


def test_config_selects_the_backend_and_rules_announce_they_are_not_an_llm(caplog):
    with caplog.at_level(logging.WARNING):
        oracle = make_oracle(OracleLabelConfig())
    assert isinstance(oracle, RuleOracle) and not oracle.is_llm and oracle.name.startswith("rules:")
    assert "NOT from an LLM" in caplog.text
    with pytest.raises(ValueError, match="model is required"):
        make_oracle(OracleLabelConfig(oracle="openai", endpoint="http://x/v1"))
    with pytest.raises(ValueError, match="endpoint is required"):
        make_oracle(OracleLabelConfig(oracle="openai", model="m"))
    remote = make_oracle(OracleLabelConfig(oracle="openai", model="m", endpoint="http://h:8000/v1/"))
    assert remote.is_llm and remote.name == "openai:m@http://h:8000/v1"
