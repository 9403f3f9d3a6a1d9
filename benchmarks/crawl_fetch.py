"""Fetch + extract throughput of the GitHub crawl: streaming extraction vs. extracting to disk with GNU tar.

Both sides download the same gzipped repository tarballs over HTTP from a loopback server (GitHub's codeload
format: one top folder per archive) and turn them into the same file records (path, language, text, SHA256)
under the same file rules. Ours streams each archive through ``tarfile`` without touching the disk
(``spark_jobs.crawl.github.tarball``); the peer is the obvious alternative: save the download, run
``tar -xzf`` into a temporary directory, walk it and classify each file. The corpus is real code: the Python
standard library on this machine, cut into repositories of ``--files-per-repo`` files.

    python benchmarks/crawl_fetch.py --repos 40 --files-per-repo 150 --rounds 3
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import io
import logging
import os
import platform
import shutil
import subprocess
import sys
import sysconfig
import tarfile
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import requests

from spark_jobs.crawl.file_rules import FileRules, classify
from spark_jobs.crawl.github.api import GitHubClient
from spark_jobs.crawl.github.config import ApiConfig, ArchiveLimits
from spark_jobs.crawl.github.fetch import tarball_rows
from spark_jobs.crawl.github.tarball import extract_all

log = logging.getLogger("bench.crawl_fetch")


def build_corpus(repos: int, files_per_repo: int) -> dict[str, bytes]:
    """``owner/name -> gzipped tarball`` of consecutive standard-library files (level 6, as codeload)."""
    stdlib = Path(sysconfig.get_paths()["stdlib"])
    files = sorted(p for p in stdlib.rglob("*") if p.is_file() and not {"site-packages", "__pycache__"} & set(p.parts)
                   and p.stat().st_size < 2_000_000)
    archives = {}
    for i in range(repos):
        chunk = files[i * files_per_repo:(i + 1) * files_per_repo]
        if not chunk:
            break
        buf = io.BytesIO()
        with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
            for path in chunk:
                info = tar.gettarinfo(str(path), arcname=f"bench-repo{i}-0000000/{path.relative_to(stdlib)}")
                info.mtime, info.uid, info.gid, info.uname, info.gname = 0, 0, 0, "", ""
                with open(path, "rb") as fh:
                    tar.addfile(info, fh)
        archives[f"bench/repo{i}"] = gzip.compress(buf.getvalue(), compresslevel=6, mtime=0)
    return archives


def serve(archives: dict[str, bytes]) -> ThreadingHTTPServer:
    """Loopback GitHub: /api/repos/{o}/{n}/tarball/{sha} answers with the archive (no redirect, to time the body)."""

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args) -> None:
            pass

        def do_GET(self) -> None:
            parts = self.path.split("/")
            data = archives.get(f"{parts[2]}/{parts[3]}") if len(parts) > 5 else None
            self.send_response(200 if data else 404)
            self.send_header("Content-Length", str(len(data or b"")))
            self.end_headers()
            self.wfile.write(data or b"")

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True).start()
    return server


def run_streaming(base: str, repos: list[str], rules: FileRules) -> tuple[int, int]:
    client = GitHubClient(ApiConfig(base_url=base, max_concurrency=1))
    files = text_bytes = 0
    for repo in repos:
        with client.tarball(repo, "0" * 40) as stream:
            extraction = extract_all(stream, rules, ArchiveLimits())
        assert extraction.failure is None, extraction.failure
        rows = [r for r in tarball_rows(repo, "0" * 40, extraction) if r["kind"] == "file"]
        files += len(rows)
        text_bytes += sum(r["size_bytes"] for r in rows)
    client.close()
    return files, text_bytes


def run_tar_to_disk(base: str, repos: list[str], rules: FileRules) -> tuple[int, int]:
    files = text_bytes = 0
    session = requests.Session()
    for repo in repos:
        with tempfile.TemporaryDirectory(prefix="bench-tar-") as tmp:
            archive = Path(tmp) / "repo.tar.gz"
            with session.get(f"{base}/repos/{repo}/tarball/{'0' * 40}", stream=True) as resp:
                resp.raise_for_status()
                with open(archive, "wb") as fh:
                    shutil.copyfileobj(resp.raw, fh, 1 << 20)
            out = Path(tmp) / "x"
            out.mkdir()
            subprocess.run(["tar", "-xzf", str(archive), "-C", str(out), "--no-same-owner"], check=True)
            [top] = list(out.iterdir())
            for dirpath, _, names in os.walk(top):
                for name in names:
                    full = Path(dirpath) / name
                    if full.is_symlink() or not full.is_file():
                        continue
                    rel = full.relative_to(top).as_posix()
                    verdict = classify(rel, full.read_bytes(), rules)
                    if verdict.kept:
                        raw = verdict.text.encode()
                        hashlib.sha256(raw).hexdigest()
                        files += 1
                        text_bytes += len(raw)
    return files, text_bytes


def main(argv: list[str] | None = None) -> int:
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from benchmarks.quiet import MachineGuard, add_quiet_arguments

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repos", type=int, default=40, help="repositories (tarballs) per round")
    parser.add_argument("--files-per-repo", type=int, default=150, help="standard-library files per repository")
    parser.add_argument("--rounds", type=int, default=3, help="timed rounds per method (the best is reported)")
    add_quiet_arguments(parser)
    args = parser.parse_args(argv)
    guard = MachineGuard.from_args(args)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", stream=sys.stderr)

    log.info("building %d tarballs of %d files from %s", args.repos, args.files_per_repo,
             sysconfig.get_paths()["stdlib"])
    archives = build_corpus(args.repos, args.files_per_repo)
    compressed = sum(len(a) for a in archives.values())
    server = serve(archives)
    base = f"http://127.0.0.1:{server.server_address[1]}"
    repos = sorted(archives)
    rules = FileRules()
    results = {}
    for name, method in [("streaming (ours)", run_streaming), ("tar -xzf to disk (peer)", run_tar_to_disk)]:
        best, counts = None, None
        for round_no in range(args.rounds):
            t0 = time.perf_counter()
            counts = method(base, repos, rules)
            elapsed = time.perf_counter() - t0
            log.info("%s round %d: %.2fs", name, round_no + 1, elapsed)
            best = elapsed if best is None else min(best, elapsed)
        results[name] = (best, *counts)
    server.shutdown()

    print(f"\nmachine: {platform.machine()} {os.cpu_count()} cores, Python {platform.python_version()}, "
          f"{subprocess.run(['tar', '--version'], capture_output=True, text=True).stdout.splitlines()[0]}")
    print(f"corpus: {len(repos)} tarballs, {compressed / 1e6:.1f} MB compressed; best of {args.rounds} rounds, "
          f"one process")
    print(f"{'method':<26}{'seconds':>9}{'files':>8}{'files/s':>10}{'text MB/s':>11}{'download MB/s':>15}")
    for name, (seconds, files, text_bytes) in results.items():
        print(f"{name:<26}{seconds:>9.2f}{files:>8}{files / seconds:>10.0f}{text_bytes / seconds / 1e6:>11.1f}"
              f"{compressed / seconds / 1e6:>15.1f}")
    ours, peer = results["streaming (ours)"], results["tar -xzf to disk (peer)"]
    if ours[1] != peer[1]:
        print(f"WARNING: the methods kept different file counts ({ours[1]} vs {peer[1]})")
    print(f"ratio: streaming is {peer[0] / ours[0]:.2f}x the speed of tar-to-disk")
    print(guard.report())
    return 0


if __name__ == "__main__":
    sys.exit(main())
