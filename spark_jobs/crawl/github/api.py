"""A GitHub REST client that behaves: rate limits, retries, conditional requests, bounded concurrency.

* **Token** from the Airflow connection (``AIRFLOW_CONN_<ID>``, the form in which Airflow's secrets reach workers and
  pods: a JSON object with ``password`` or ``extra.token``, or a URI ``https://:TOKEN@host``) or else an environment
  variable. It goes only into the ``Authorization`` header and never into a log line, a repr or an error message.
* **Rate limits.** A 403/429 answer with ``Retry-After`` or ``X-RateLimit-Remaining: 0`` waits (``Retry-After``
  seconds, else until ``X-RateLimit-Reset``) and retries; a wait longer than ``max_rate_limit_wait_s`` fails with
  :class:`RateLimitExceeded`. When a success reports 0 remaining, later requests of this process wait for the
  reset first instead of collecting a 403.
* **Retries** with capped exponential backoff on 5xx answers, timeouts and connection resets.
* **Conditional requests.** JSON GETs send ``If-None-Match`` with the ETag stored in an :class:`EtagCache`; a 304
  (which GitHub does not count against the limit) answers from the cache.
* **Bounded concurrency**: one semaphore for all threads of the process, held for a whole streamed download.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import random
import re
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote, unquote, urlsplit

import requests

from lake.storage import Storage
from spark_jobs.crawl.github.config import ApiConfig

log = logging.getLogger(__name__)


class GitHubError(RuntimeError):
    pass


class RateLimitExceeded(GitHubError):
    pass


def token_from_environment(cfg: ApiConfig, environ: dict[str, str] | None = None) -> str | None:
    """The API token: the Airflow connection ``cfg.conn_id`` if set in the environment, else ``cfg.token_env``.

    >>> env = {"AIRFLOW_CONN_GITHUB_DEFAULT": '{"conn_type": "http", "password": "t0k"}'}
    >>> token_from_environment(ApiConfig(), env)
    't0k'
    >>> token_from_environment(ApiConfig(), {"AIRFLOW_CONN_GITHUB_DEFAULT": "https://:abc%2F1@api.github.com"})
    'abc/1'
    >>> token_from_environment(ApiConfig(), {"GITHUB_TOKEN": "xyz"}), token_from_environment(ApiConfig(), {})
    ('xyz', None)
    """
    env = os.environ if environ is None else environ
    raw = env.get(f"AIRFLOW_CONN_{cfg.conn_id.upper()}")
    if raw:
        raw = raw.strip()
        if raw.startswith("{"):
            conn = json.loads(raw)
            extra = conn.get("extra") or {}
            if isinstance(extra, str):
                extra = json.loads(extra or "{}")
            token = conn.get("password") or extra.get("token")
        else:
            token = unquote(urlsplit(raw).password or "")
        if token:
            return token
    return env.get(cfg.token_env) or None


class EtagCache:
    """ETag and body of earlier JSON answers, in the lake (so every executor and every later run shares them)."""

    def __init__(self, storage: Storage, prefix: str):
        self.storage = storage
        self.prefix = prefix.rstrip("/")

    def _key(self, url: str) -> str:
        return f"{self.prefix}/{hashlib.sha256(url.encode()).hexdigest()}.json"

    def get(self, url: str) -> tuple[str, Any] | None:
        key = self._key(url)
        if not self.storage.exists(key):
            return None
        entry = json.loads(self.storage.read_bytes(key))
        return entry["etag"], entry["body"]

    def put(self, url: str, etag: str, body: Any) -> None:
        self.storage.write_bytes(self._key(url), json.dumps({"url": url, "etag": etag, "body": body}).encode())


@dataclass(frozen=True)
class RepoMeta:
    """What the crawl keeps of ``GET /repos/{owner}/{name}``."""

    full_name: str
    stars: int
    forks: int
    license: str | None
    default_branch: str
    created_at: datetime | None
    pushed_at: datetime | None
    archived: bool
    fork: bool
    clone_url: str

    @classmethod
    def from_api(cls, body: dict) -> RepoMeta:
        spdx = (body.get("license") or {}).get("spdx_id")
        return cls(
            full_name=body["full_name"],
            stars=int(body.get("stargazers_count") or 0),
            forks=int(body.get("forks_count") or 0),
            license=None if spdx in (None, "", "NOASSERTION") else spdx,
            default_branch=body.get("default_branch") or "main",
            created_at=parse_time(body.get("created_at")),
            pushed_at=parse_time(body.get("pushed_at")),
            archived=bool(body.get("archived")),
            fork=bool(body.get("fork")),
            clone_url=body.get("clone_url") or "",
        )


def parse_time(value: str | None) -> datetime | None:
    """GitHub's ISO-8601 UTC timestamps.

    >>> parse_time("2024-01-02T03:04:05Z").isoformat()
    '2024-01-02T03:04:05+00:00'
    """
    if not value:
        return None
    return datetime.fromisoformat(value.replace("Z", "+00:00")).astimezone(UTC)


def last_page(link_header: str | None) -> int | None:
    """The page number of ``rel="last"`` in a Link header (how GitHub reveals a list's length).

    >>> last_page('<https://x/commits?per_page=1&page=2>; rel="next", <https://x/commits?per_page=1&page=734>; rel="last"')
    734
    """
    for part in (link_header or "").split(","):
        if 'rel="last"' in part:
            match = re.search(r"[?&]page=(\d+)", part)
            if match:
                return int(match.group(1))
    return None


class GitHubClient:
    """One client per process; safe to share between threads."""

    def __init__(self, cfg: ApiConfig, *, token: str | None = None, etags: EtagCache | None = None,
                 sleep: Callable[[float], None] = time.sleep, clock: Callable[[], float] = time.time):
        self.cfg = cfg
        self.base_url = cfg.base_url.rstrip("/")
        self.__token = token
        self.etags = etags
        self.sleep = sleep
        self.clock = clock
        self._slots = threading.BoundedSemaphore(cfg.max_concurrency)
        self._lock = threading.Lock()
        self._blocked_until = 0.0
        self.session = requests.Session()
        adapter = requests.adapters.HTTPAdapter(pool_connections=4, pool_maxsize=cfg.max_concurrency)
        self.session.mount("http://", adapter)
        self.session.mount("https://", adapter)
        self.session.headers.update({"Accept": "application/vnd.github+json", "User-Agent": cfg.user_agent,
                                     "X-GitHub-Api-Version": "2022-11-28"})
        self.counters = {"requests": 0, "retries": 0, "rate_limit_waits": 0, "not_modified": 0}

    def __repr__(self) -> str:
        return f"GitHubClient({self.base_url!r}, token={'set' if self.__token else 'none'})"

    def close(self) -> None:
        self.session.close()

    # -- the request loop -----------------------------------------------------------------------
    def _headers(self, extra: dict[str, str] | None) -> dict[str, str]:
        headers = dict(extra or {})
        if self.__token:
            headers["Authorization"] = f"Bearer {self.__token}"
        return headers

    def _count(self, name: str) -> None:
        with self._lock:
            self.counters[name] += 1

    def _wait_for_quota(self) -> None:
        wait = self._blocked_until - self.clock()
        if wait > 0:
            log.warning("rate limit exhausted; waiting %.0fs for the reset", wait)
            self._count("rate_limit_waits")
            self.sleep(wait)

    def _rate_limit_wait(self, resp: requests.Response) -> float | None:
        """Seconds to wait before retrying a rate-limited answer, or None if it is not a rate limit."""
        if resp.status_code not in (403, 429):
            return None
        retry_after = resp.headers.get("Retry-After")
        if retry_after is not None:
            try:
                return max(0.0, float(retry_after))
            except ValueError:
                return 60.0
        if resp.headers.get("X-RateLimit-Remaining") == "0":
            reset = float(resp.headers.get("X-RateLimit-Reset") or 0)
            return max(0.0, reset - self.clock()) + 1.0
        if resp.status_code == 429:
            return 60.0
        return None

    def _note_quota(self, resp: requests.Response) -> None:
        if resp.headers.get("X-RateLimit-Remaining") == "0" and resp.headers.get("X-RateLimit-Reset"):
            with self._lock:
                self._blocked_until = max(self._blocked_until, float(resp.headers["X-RateLimit-Reset"]) + 1.0)

    def _backoff(self, attempt: int) -> float:
        return min(self.cfg.backoff_max_s, self.cfg.backoff_s * 2 ** attempt) * (0.5 + random.random() / 2)

    def request(self, method: str, url: str, *, params: dict | None = None, headers: dict | None = None,
                stream: bool = False) -> requests.Response:
        """One logical request with retries; the answer is any status GitHub meant (2xx, 3xx, 4xx)."""
        attempt = 0
        while True:
            self._wait_for_quota()
            try:
                self._count("requests")
                resp = self.session.request(method, url, params=params, headers=self._headers(headers),
                                            timeout=self.cfg.timeout_s, stream=stream, allow_redirects=True)
            except (requests.ConnectionError, requests.Timeout, requests.exceptions.ChunkedEncodingError) as err:
                attempt += 1
                if attempt >= self.cfg.max_attempts:
                    raise GitHubError(f"{method} {url}: {type(err).__name__} after {attempt} attempts") from None
                delay = self._backoff(attempt)
                log.warning("%s %s: %s; retry %d in %.1fs", method, url, type(err).__name__, attempt, delay)
                self._count("retries")
                self.sleep(delay)
                continue
            self._note_quota(resp)
            wait = self._rate_limit_wait(resp)
            if wait is not None:
                resp.close()
                if wait > self.cfg.max_rate_limit_wait_s:
                    raise RateLimitExceeded(f"{method} {url}: rate limited for {wait:.0f}s, more than "
                                            f"max_rate_limit_wait_s={self.cfg.max_rate_limit_wait_s:.0f}")
                log.warning("%s %s: rate limited (%d); waiting %.1fs", method, url, resp.status_code, wait)
                self._count("rate_limit_waits")
                self.sleep(wait)
                continue
            if resp.status_code >= 500:
                resp.close()
                attempt += 1
                if attempt >= self.cfg.max_attempts:
                    raise GitHubError(f"{method} {url}: HTTP {resp.status_code} after {attempt} attempts")
                delay = self._backoff(attempt)
                log.warning("%s %s: HTTP %d; retry %d in %.1fs", method, url, resp.status_code, attempt, delay)
                self._count("retries")
                self.sleep(delay)
                continue
            return resp

    def get_json(self, path: str, params: dict | None = None) -> tuple[int, Any, dict[str, str]]:
        """(status, body, headers) of a JSON GET, answered from the ETag cache on 304."""
        url = f"{self.base_url}{path}"
        cache_url = url + ("?" + "&".join(f"{k}={params[k]}" for k in sorted(params)) if params else "")
        cached = self.etags.get(cache_url) if self.etags else None
        headers = {"If-None-Match": cached[0]} if cached else None
        with self._slots:
            resp = self.request("GET", url, params=params, headers=headers)
        with resp:
            if resp.status_code == 304 and cached:
                self._count("not_modified")
                return 200, cached[1], dict(resp.headers)
            if resp.status_code >= 400:
                return resp.status_code, None, dict(resp.headers)
            try:
                body = resp.json()
            except ValueError:
                raise GitHubError(f"GET {url}: HTTP {resp.status_code} but the body is not JSON") from None
            if self.etags and resp.headers.get("ETag"):
                self.etags.put(cache_url, resp.headers["ETag"], body)
            return resp.status_code, body, dict(resp.headers)

    # -- endpoints ------------------------------------------------------------------------------
    @staticmethod
    def _repo_path(full_name: str) -> str:
        owner, _, name = full_name.partition("/")
        if not owner or not name or "/" in name:
            raise ValueError(f"repository name {full_name!r} is not owner/name")
        return f"/repos/{quote(owner, safe='')}/{quote(name, safe='')}"

    def repo(self, full_name: str) -> RepoMeta | None:
        """Repository metadata; None when GitHub has no public repository of that name (deleted, private, DMCA)."""
        status, body, _ = self.get_json(self._repo_path(full_name))
        if status in (404, 410, 451, 403):
            return None
        if status >= 400:
            raise GitHubError(f"GET repo {full_name}: HTTP {status}")
        return RepoMeta.from_api(body)

    def head_before(self, full_name: str, branch: str, until: datetime) -> str | None:
        """SHA of the last commit on ``branch`` committed before ``until``; None for an empty history."""
        status, body, _ = self.get_json(f"{self._repo_path(full_name)}/commits",
                                        {"sha": branch, "until": until.strftime("%Y-%m-%dT%H:%M:%SZ"),
                                         "per_page": 1})
        if status in (404, 409) or not body:
            return None
        if status >= 400:
            raise GitHubError(f"list commits of {full_name}: HTTP {status}")
        return body[0]["sha"]

    def commit_count(self, full_name: str, sha: str) -> int:
        """Commits reachable from ``sha``, read from the Link header of a one-per-page listing."""
        status, body, headers = self.get_json(f"{self._repo_path(full_name)}/commits", {"sha": sha, "per_page": 1})
        if status >= 400:
            raise GitHubError(f"count commits of {full_name}: HTTP {status}")
        return last_page(headers.get("Link") or headers.get("link")) or len(body or [])

    @contextmanager
    def tarball(self, full_name: str, sha: str) -> Iterator[Any]:
        """The gzipped tarball of ``full_name`` at ``sha`` as a raw byte stream (follows GitHub's codeload redirect)."""
        with self._slots:
            resp = self.request("GET", f"{self.base_url}{self._repo_path(full_name)}/tarball/{sha}", stream=True)
            try:
                if resp.status_code != 200:
                    raise GitHubError(f"tarball of {full_name}@{sha}: HTTP {resp.status_code}")
                resp.raw.decode_content = False
                yield resp.raw
            finally:
                resp.close()
