"""The lake on S3: our StageRun / Lake path (boto3, one PUT or GET per parquet part) against pyarrow's own S3
filesystem (the named peer, Arrow's C++ S3 client) on the same parquet parts, the same S3 server, the same run.

The data is real code already on disk (the Python standard library's sources), split into parts the way a
stage writes them. The S3 server is `weed mini` on loopback, started for the run (scripts/services.sh) unless
--endpoint names a running one. Prints seconds, MB/s and the ratio ours / peer for writing and reading.

    .venv/bin/python benchmarks/lake_s3.py --parts 16 --repeat 3
"""

from __future__ import annotations

import argparse
import io
import logging
import os
import socket
import statistics
import subprocess
import sys
import sysconfig
import tempfile
import time
import uuid
from pathlib import Path

import pyarrow as pa
import pyarrow.dataset as ds
import pyarrow.fs as pafs
import pyarrow.parquet as pq

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from lake.stage import Lake, StageRun  # noqa: E402

log = logging.getLogger("lake_s3")
ACCESS_KEY, SECRET_KEY, BUCKET = "bench", "bench-secret", "bench-lake"


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from benchmarks.quiet import add_quiet_arguments

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--parts", type=int, default=16, help="parquet parts per dataset (one per shard)")
    parser.add_argument("--max-files", type=int, default=4000, help="stdlib source files to load as records")
    parser.add_argument("--repeat", type=int, default=3, help="timed repetitions; the median is reported")
    parser.add_argument("--endpoint", default=None,
                        help="a running S3 server (credentials from AWS_*); default: start weed mini for the run")
    add_quiet_arguments(parser)
    args = parser.parse_args(argv)
    if args.parts < 1 or args.repeat < 1 or args.max_files < 1:
        parser.error("--parts, --repeat and --max-files must be positive")
    return args


def stdlib_table(max_files: int) -> pa.Table:
    """Real code: the standard library's .py files as (path, content) records, in a stable order."""
    root = Path(sysconfig.get_paths()["stdlib"])
    paths, contents = [], []
    for path in sorted(root.rglob("*.py"))[:max_files]:
        try:
            contents.append(path.read_text(encoding="utf-8"))
        except (UnicodeDecodeError, OSError):
            continue
        paths.append(str(path.relative_to(root)))
    return pa.table({"path": paths, "content": contents})


def split(table: pa.Table, parts: int) -> list[pa.Table]:
    size = -(-table.num_rows // parts)
    return [table.slice(i * size, size) for i in range(parts) if i * size < table.num_rows]


def free_base_port() -> int:
    for base in range(31000, 45000, 17):
        ports = [base + i for i in range(7)] + [base + i + 10000 for i in range(7)]
        try:
            for port in ports:
                with socket.socket() as sock:
                    sock.bind(("127.0.0.1", port))
            return base
        except OSError:
            continue
    raise RuntimeError("no free block of ports for weed mini")


class WeedMini:
    """weed mini for the run, through scripts/services.sh (own ports and data dir, stopped at exit)."""

    def __enter__(self) -> str:
        self.dir = tempfile.TemporaryDirectory(prefix="bench-s3-")
        port = free_base_port()
        self.env = dict(os.environ, SEEDCODER_SERVICES_DIR=self.dir.name, SEEDCODER_S3_PORT=str(port),
                        SEEDCODER_S3_BUCKET=BUCKET, SEEDCODER_S3_ACCESS_KEY=ACCESS_KEY,
                        SEEDCODER_S3_SECRET_KEY=SECRET_KEY, SEEDCODER_WEED_BIN=str(Path(sys.executable).parent / "weed"))
        proc = subprocess.run(["bash", str(REPO / "scripts" / "services.sh"), "start", "s3"], env=self.env,
                              capture_output=True, text=True, timeout=120)
        if proc.returncode != 0:
            raise RuntimeError(f"weed mini did not start:\n{proc.stdout}{proc.stderr}")
        os.environ.update(AWS_ACCESS_KEY_ID=ACCESS_KEY, AWS_SECRET_ACCESS_KEY=SECRET_KEY, AWS_DEFAULT_REGION="us-east-1")
        return f"http://127.0.0.1:{port}"

    def __exit__(self, *exc) -> None:
        subprocess.run(["bash", str(REPO / "scripts" / "services.sh"), "stop", "s3"], env=self.env,
                       capture_output=True, text=True, timeout=60)
        self.dir.cleanup()


def peer_filesystem(endpoint: str) -> pafs.S3FileSystem:
    scheme, host = endpoint.split("://", 1)
    return pafs.S3FileSystem(endpoint_override=host, scheme=scheme, access_key=os.environ["AWS_ACCESS_KEY_ID"],
                             secret_key=os.environ["AWS_SECRET_ACCESS_KEY"], region="us-east-1")


def parquet_bytes(part: pa.Table) -> bytes:
    buf = io.BytesIO()
    pq.write_table(part, buf, compression="zstd", row_group_size=8192)
    return buf.getvalue()


def timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def one_round(lake: Lake, peer: pafs.S3FileSystem, parts: list[pa.Table], rows: int) -> dict[str, dict[str, float]]:
    """Write then read the same parts both ways under a fresh prefix; check both read back every row."""
    peer_prefix = f"{lake.root.removeprefix('s3://')}/peer/files"

    def ours_write():
        with StageRun(lake, "bench", "crawl") as stage:
            for i, part in enumerate(parts):
                stage.write_table("files", part, i)

    def peer_write():
        for i, part in enumerate(parts):
            pq.write_table(part, f"{peer_prefix}/part-{i:05d}.parquet", filesystem=peer, compression="zstd",
                           row_group_size=8192)

    read_back = {}

    def ours_read():
        read_back["ours"] = lake.read_table("bench", "crawl", "files").num_rows

    def peer_read():
        read_back["peer"] = ds.dataset(peer_prefix, filesystem=peer, format="parquet").to_table().num_rows

    timings = {"write": {"ours": timed(ours_write), "peer": timed(peer_write)},
               "read": {"ours": timed(ours_read), "peer": timed(peer_read)}}
    if read_back != {"ours": rows, "peer": rows}:
        raise RuntimeError(f"read back {read_back} rows, wrote {rows}")
    return timings


def run(args: argparse.Namespace, endpoint: str) -> list[dict]:
    table = stdlib_table(args.max_files)
    parts = split(table, args.parts)
    payload = sum(len(parquet_bytes(p)) for p in parts)
    log.info("%d records, %d parts, %.1f MB of zstd parquet", table.num_rows, len(parts), payload / 1e6)
    peer = peer_filesystem(endpoint)
    rounds = []
    for round_ in range(args.repeat):
        lake = Lake.at(f"s3://{BUCKET}/r{round_}-{uuid.uuid4().hex[:8]}", endpoint_url=endpoint)
        rounds.append(one_round(lake, peer, parts, table.num_rows))
        log.info("round %d/%d done", round_ + 1, args.repeat)
    rows = []
    for op in ("write", "read"):
        ours = statistics.median(r[op]["ours"] for r in rounds)
        peer_s = statistics.median(r[op]["peer"] for r in rounds)
        rows.append({"op": op, "ours_s": ours, "peer_s": peer_s, "ours_mb_s": payload / 1e6 / ours,
                     "peer_mb_s": payload / 1e6 / peer_s, "ratio": ours / peer_s})
    return rows


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    from benchmarks.quiet import MachineGuard

    guard = MachineGuard.from_args(args)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if args.endpoint:
        rows = run(args, args.endpoint)
    else:
        with WeedMini() as endpoint:
            rows = run(args, endpoint)
    print(f"{'op':<6} {'ours s':>8} {'peer s':>8} {'ours MB/s':>10} {'peer MB/s':>10} {'ours/peer':>10}")
    for r in rows:
        print(f"{r['op']:<6} {r['ours_s']:>8.3f} {r['peer_s']:>8.3f} {r['ours_mb_s']:>10.1f} {r['peer_mb_s']:>10.1f} "
              f"{r['ratio']:>10.2f}")
    print("peer: pyarrow.fs.S3FileSystem (Arrow C++ S3 client); ours: lake.StageRun.write_table + commit, "
          "Lake.read_table (boto3). ratio < 1: ours is faster.")
    print(guard.report())
    return 0


if __name__ == "__main__":
    sys.exit(main())
