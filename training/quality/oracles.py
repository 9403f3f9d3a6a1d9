"""Oracles that rate files: one interface, three backends.

- :class:`VllmOracle`: offline batch generation with vLLM (``LLM.generate``, or ``LLM.chat`` when the model
  has a chat template) on a GPU node: the production path for a self-hosted oracle.
- :class:`OpenAIOracle`: any OpenAI-compatible ``/chat/completions`` endpoint (``vllm serve``, a hosted
  model), with bounded concurrency and retries with exponential backoff on 429/5xx/timeouts.
- :class:`RuleOracle`: the rule-based teacher of the local profile (see rule_teacher.py). NOT an LLM:
  ``is_llm`` is False and its name starts with ``rules:``, so its labels are never mistaken for LLM labels.

An oracle answers prompts with free text (or None when a request finally failed); parsing the rating is the
caller's job (prompt.parse_rating), so every backend's answers go through the same never-guess parser.
"""

from __future__ import annotations

import json
import logging
import os
import random
import time
import urllib.error
import urllib.request
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Protocol

from training.quality import rule_teacher
from training.quality.config import OracleLabelConfig

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RateRequest:
    """One file to rate: the rendered prompt, plus the raw fields the rule teacher needs."""

    prompt: str
    language: str
    content: str


class Oracle(Protocol):
    name: str
    is_llm: bool

    def answer(self, requests: Sequence[RateRequest]) -> list[str | None]: ...


class RuleOracle:
    """The rule-based teacher behind the oracle interface (local default; not an LLM)."""

    is_llm = False
    name = f"rules:{rule_teacher.TEACHER_VERSION}"

    def answer(self, requests: Sequence[RateRequest]) -> list[str | None]:
        return [rule_teacher.rate(r.language, r.content).answer() for r in requests]


class VllmOracle:
    """Offline batch generation on the local accelerator(s) with vLLM."""

    is_llm = True

    def __init__(self, model: str, *, temperature: float = 0.0, max_new_tokens: int = 512,
                 engine_args: dict | None = None):
        from training.quality.scorer import vllm_cpu_defaults

        vllm_cpu_defaults()
        from vllm import LLM, SamplingParams

        self.name = f"vllm:{model}"
        from lake.timing import fixed_cost

        with fixed_cost("vllm_engine"):
            self.llm = LLM(model=model, **(engine_args or {}))
        self.params = SamplingParams(temperature=temperature, max_tokens=max_new_tokens, seed=0)
        tokenizer = self.llm.get_tokenizer()
        self.chat = bool(getattr(tokenizer, "chat_template", None))

    def answer(self, requests: Sequence[RateRequest]) -> list[str | None]:
        if self.chat:
            conversations = [[{"role": "user", "content": r.prompt}] for r in requests]
            outputs = self.llm.chat(conversations, self.params, use_tqdm=False)
        else:
            outputs = self.llm.generate([r.prompt for r in requests], self.params, use_tqdm=False)
        return [out.outputs[0].text if out.outputs else None for out in outputs]


class OracleRequestError(RuntimeError):
    pass


class OpenAIOracle:
    """An OpenAI-compatible chat endpoint, called with at most ``concurrency`` requests in flight."""

    is_llm = True
    RETRY_STATUS = frozenset({408, 409, 425, 429, 500, 502, 503, 504})

    def __init__(self, endpoint: str, model: str, *, api_key: str | None = None, concurrency: int = 8,
                 max_retries: int = 4, timeout_s: float = 120.0, temperature: float = 0.0,
                 max_new_tokens: int = 512, backoff_s: float = 1.0):
        if not endpoint.startswith(("http://", "https://")):
            raise ValueError(f"oracle endpoint {endpoint!r} must be an http(s) URL, e.g. http://host:8000/v1")
        self.url = endpoint.rstrip("/") + "/chat/completions"
        self.name = f"openai:{model}@{endpoint.rstrip('/')}"
        self.model = model
        self.api_key = api_key
        self.concurrency = concurrency
        self.max_retries = max_retries
        self.timeout_s = timeout_s
        self.temperature = temperature
        self.max_new_tokens = max_new_tokens
        self.backoff_s = backoff_s
        self.failures = 0

    def answer(self, requests: Sequence[RateRequest]) -> list[str | None]:
        with ThreadPoolExecutor(max_workers=self.concurrency, thread_name_prefix="oracle") as pool:
            return list(pool.map(self._answer_one, requests))

    def _answer_one(self, request: RateRequest) -> str | None:
        try:
            return self._post_with_retries(request.prompt)
        except OracleRequestError as err:
            self.failures += 1
            log.warning("oracle request failed for good: %s", err)
            return None

    def _post_with_retries(self, prompt: str) -> str:
        body = json.dumps({"model": self.model, "messages": [{"role": "user", "content": prompt}],
                           "temperature": self.temperature, "max_tokens": self.max_new_tokens}).encode()
        headers = {"Content-Type": "application/json"}
        if self.api_key:
            headers["Authorization"] = f"Bearer {self.api_key}"
        last = ""
        for attempt in range(self.max_retries + 1):
            if attempt:
                time.sleep(self.backoff_s * 2 ** (attempt - 1) * (0.5 + random.random()))
            try:
                req = urllib.request.Request(self.url, data=body, headers=headers, method="POST")
                with urllib.request.urlopen(req, timeout=self.timeout_s) as resp:
                    payload = json.loads(resp.read())
                return payload["choices"][0]["message"]["content"] or ""
            except urllib.error.HTTPError as err:
                last = f"HTTP {err.code} from {self.url}"
                if err.code not in self.RETRY_STATUS:
                    raise OracleRequestError(last) from None
            except (urllib.error.URLError, TimeoutError, ConnectionError) as err:
                last = f"{type(err).__name__}: {err} ({self.url})"
            except (ValueError, KeyError, IndexError, TypeError) as err:
                raise OracleRequestError(f"malformed response from {self.url}: {err!r}") from None
        raise OracleRequestError(f"{last}; gave up after {self.max_retries + 1} attempts")


def make_oracle(cfg: OracleLabelConfig, lake=None) -> Oracle:
    """The oracle the config names; the rule teacher announces loudly that it is not an LLM.

    ``release:<name>`` serves that release's pretrained model with vLLM (``lake`` locates it).
    """
    if cfg.oracle.startswith("release:"):
        from lake.release import resolve_model

        if lake is None:
            raise ValueError(f"oracle {cfg.oracle!r} needs the lake to find the release's model")
        path, ref = resolve_model(lake, cfg.oracle)
        log.info("oracle: %s", ref)
        oracle = VllmOracle(str(path), temperature=cfg.temperature, max_new_tokens=cfg.max_new_tokens,
                            engine_args=dict(cfg.engine_args))
        oracle.name = f"vllm:{cfg.oracle}"
        return oracle
    if cfg.oracle == "rules":
        log.warning("NO LLM ORACLE CONFIGURED (stages.oracle_label.oracle = rules): labels come from the "
                    "rule-based teacher %s, NOT from an LLM. Set oracle: vllm or openai for LLM labels.",
                    RuleOracle.name)
        return RuleOracle()
    if not cfg.model:
        raise ValueError(f"stages.oracle_label.model is required for oracle {cfg.oracle!r}")
    if cfg.oracle == "vllm":
        return VllmOracle(cfg.model, temperature=cfg.temperature, max_new_tokens=cfg.max_new_tokens,
                          engine_args=dict(cfg.engine_args))
    if not cfg.endpoint:
        raise ValueError("stages.oracle_label.endpoint is required for oracle 'openai' (e.g. http://host:8000/v1)")
    return OpenAIOracle(cfg.endpoint, cfg.model, api_key=os.environ.get(cfg.api_key_env), concurrency=cfg.concurrency,
                        max_retries=cfg.max_retries, timeout_s=cfg.timeout_s, temperature=cfg.temperature,
                        max_new_tokens=cfg.max_new_tokens)
