"""A fake GitHub on 127.0.0.1 for the crawl tests: REST API, tarball/codeload endpoints and GH Archive files.

It serves real git repositories made by the test (tarballs are ``git archive`` of the requested SHA, commit
lookups are ``git rev-list``), plus hand-built hostile tarballs, and plays scripted faults (403 with a reset
time, 429 with Retry-After, 502, a connection cut) in front of any path. It counts every request, so tests can
assert what was (not) downloaded again.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import re
import subprocess
import threading
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

GIT_ENV = {"GIT_AUTHOR_NAME": "Test Author", "GIT_AUTHOR_EMAIL": "author@example.com",
           "GIT_COMMITTER_NAME": "Test Author", "GIT_COMMITTER_EMAIL": "author@example.com",
           "GIT_CONFIG_NOSYSTEM": "1", "HOME": "/nonexistent", "PATH": "/usr/bin:/bin"}


def git(repo: Path, *args: str, date: str | None = None) -> str:
    env = dict(GIT_ENV)
    if date:
        env["GIT_AUTHOR_DATE"] = env["GIT_COMMITTER_DATE"] = date
    return subprocess.run(["git", *args], cwd=repo, env=env, check=True, capture_output=True,
                          text=True).stdout.strip()


def make_repo(path: Path, history: list[tuple[str, dict[str, bytes | None], str]]) -> Path:
    """A git repository whose commits are (ISO date, {path: content or None to delete}, message)."""
    path.mkdir(parents=True)
    git(path, "init", "-q", "-b", "main")
    git(path, "config", "uploadpack.allowfilter", "true")
    for date, changes, message in history:
        for rel, data in changes.items():
            target = path / rel
            if data is None:
                target.unlink()
            else:
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_bytes(data)
        git(path, "add", "-A")
        git(path, "commit", "-q", "-m", message, date=date)
    return path


class _QuietServer(ThreadingHTTPServer):
    """Clients that hang up early (a killed crawl, a closed 404) are normal here, not tracebacks."""

    def handle_error(self, request, client_address) -> None:
        import sys

        if not isinstance(sys.exc_info()[1], (ConnectionError, TimeoutError)):
            super().handle_error(request, client_address)


@dataclass
class FakeRepo:
    name: str
    git_dir: Path | None
    stars: int = 150
    forks: int = 20
    license: str | None = "MIT"
    created_at: str = "2025-01-01T00:00:00Z"
    pushed_at: str = "2026-10-20T00:00:00Z"
    fork: bool = False
    archived: bool = False
    tarball: bytes | None = None  # served instead of `git archive` (hostile archives)
    head: str = "f" * 40          # the SHA answered when there is no git repository

    def meta(self, base: str) -> dict:
        return {"full_name": self.name, "stargazers_count": self.stars, "forks_count": self.forks,
                "license": {"spdx_id": self.license} if self.license else None, "default_branch": "main",
                "created_at": self.created_at, "pushed_at": self.pushed_at, "archived": self.archived,
                "fork": self.fork, "clone_url": f"file://{self.git_dir}" if self.git_dir else f"{base}/{self.name}.git"}


@dataclass
class Fault:
    status: int
    headers: dict[str, str] = field(default_factory=dict)
    cut_after: int | None = None  # serve the real body but close the connection after this many bytes
    delay_s: float = 0.0          # answer normally, but only after this many seconds


class FakeGitHub:
    def __init__(self, token: str | None = "test-token-123"):
        self.token = token
        self.repos: dict[str, FakeRepo] = {}
        self.hours: dict[str, bytes] = {}
        self.faults: dict[str, list[Fault]] = defaultdict(list)
        self.requests: Counter = Counter()
        self.tarball_downloads: Counter = Counter()
        self.seen_auth: list[str | None] = []
        self.lock = threading.Lock()
        self.server = _QuietServer(("127.0.0.1", 0), self._handler())
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def __enter__(self) -> FakeGitHub:
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        self.server.server_close()

    def add_repo(self, repo: FakeRepo) -> FakeRepo:
        self.repos[repo.name] = repo
        return repo

    def add_hour(self, hour: str, events: list[dict | str], *, truncate: bool = False) -> None:
        lines = "".join((e if isinstance(e, str) else json.dumps(e)) + "\n" for e in events).encode()
        data = gzip.compress(lines, mtime=0)
        self.hours[hour] = data[: len(data) // 2] if truncate else data

    def fault(self, path: str, *faults: Fault) -> None:
        self.faults[path].extend(faults)

    # -- request handling ------------------------------------------------------------------------
    def _handler(self):
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args) -> None:
                pass

            def do_GET(self) -> None:
                fake.handle(self)

        return Handler

    def _send(self, h, status: int, body: bytes = b"", headers: dict[str, str] | None = None,
              cut_after: int | None = None) -> None:
        if cut_after is None:
            cut_after = getattr(h, "cut_after", None)
        h.send_response(status)
        for key, value in (headers or {}).items():
            h.send_header(key, value)
        h.send_header("Content-Length", str(len(body)))
        if cut_after is not None:
            h.send_header("Connection", "close")
        h.end_headers()
        h.wfile.write(body if cut_after is None else body[:cut_after])
        if cut_after is not None:
            h.wfile.flush()
            h.close_connection = True

    def handle(self, h) -> None:
        parts = urlsplit(h.path)
        path, query = parts.path, {k: v[-1] for k, v in parse_qs(parts.query).items()}
        with self.lock:
            self.requests[path] += 1
            fault = self.faults[path].pop(0) if self.faults.get(path) else None
        if path.startswith("/gharchive/"):
            data = self.hours.get(path.removeprefix("/gharchive/").removesuffix(".json.gz"))
            return self._send(h, 200, data, {"Content-Type": "application/gzip"}) if data is not None \
                else self._send(h, 404, b"not found")
        if fault and fault.delay_s:
            time.sleep(fault.delay_s)
            fault = None
        h.cut_after = fault.cut_after if fault else None
        if fault and fault.cut_after is None:
            return self._send(h, fault.status, json.dumps({"message": "fault"}).encode(), fault.headers)
        if path.startswith("/codeload/"):
            return self._codeload(h, path)
        if not path.startswith("/api/"):
            return self._send(h, 404, b"{}")
        auth = h.headers.get("Authorization")
        self.seen_auth.append(auth)
        if self.token and auth != f"Bearer {self.token}":
            return self._send(h, 401, b'{"message": "Bad credentials"}')
        match = re.fullmatch(r"/api/repos/([^/]+)/([^/]+)(/commits|/tarball/([0-9a-f]+))?", path)
        if not match or f"{match[1]}/{match[2]}" not in self.repos:
            return self._send(h, 404, b'{"message": "Not Found"}')
        repo = self.repos[f"{match[1]}/{match[2]}"]
        if match[3] is None:
            return self._json(h, repo.meta(self.url))
        if match[3] == "/commits":
            return self._commits(h, repo, query)
        return self._send(h, 302, b"", {"Location": f"{self.url}/codeload/{repo.name}/legacy.tar.gz/{match[4]}"})

    def _json(self, h, body, headers: dict[str, str] | None = None) -> None:
        data = json.dumps(body, sort_keys=True).encode()
        etag = '"' + hashlib.sha256(data).hexdigest()[:20] + '"'
        headers = {"ETag": etag, "Content-Type": "application/json", "X-RateLimit-Remaining": "4999",
                   **(headers or {})}
        if h.headers.get("If-None-Match") == etag:
            return self._send(h, 304, b"", headers)
        self._send(h, 200, data, headers)

    def _commits(self, h, repo: FakeRepo, query: dict[str, str]) -> None:
        if repo.git_dir is None:
            return self._json(h, [{"sha": repo.head}])
        args = ["rev-list", query.get("sha", "main")]
        if "until" in query:
            args.insert(1, f"--before={query['until']}")
        try:
            shas = git(repo.git_dir, *args).split()
        except subprocess.CalledProcessError:
            return self._send(h, 404, b'{"message": "No commit found"}')
        per_page = int(query.get("per_page", 30))
        page = shas[:per_page]
        headers = {}
        if len(shas) > per_page:
            last = -(-len(shas) // per_page)
            base = f"{self.url}{urlsplit(h.path).path}?sha={query.get('sha', 'main')}&per_page={per_page}"
            headers["Link"] = f'<{base}&page=2>; rel="next", <{base}&page={last}>; rel="last"'
        self._json(h, [{"sha": s} for s in page], headers)

    def _codeload(self, h, path: str) -> None:
        match = re.fullmatch(r"/codeload/([^/]+/[^/]+)/legacy\.tar\.gz/([0-9a-f]+)", path)
        repo = self.repos.get(match[1]) if match else None
        if repo is None:
            return self._send(h, 404, b"")
        with self.lock:
            self.tarball_downloads[repo.name] += 1
        sha = match[2]
        if repo.tarball is not None:
            data = repo.tarball
        else:
            prefix = f"{repo.name.replace('/', '-')}-{sha[:7]}/"
            data = subprocess.run(["git", "archive", "--format=tar", f"--prefix={prefix}", sha],
                                  cwd=repo.git_dir, check=True, capture_output=True).stdout
            data = gzip.compress(data, mtime=0)
        self._send(h, 200, data, {"Content-Type": "application/x-gzip"})


def push_event(repo: str, when: str) -> dict:
    return {"id": str(abs(hash((repo, when)))), "type": "PushEvent", "repo": {"id": 1, "name": repo,
            "url": f"https://api.github.com/repos/{repo}"}, "payload": {"size": 1}, "public": True, "created_at": when}


def wait_until(predicate, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise TimeoutError("condition not met in time")
        time.sleep(0.05)
