"""One near-dedup method on one corpus, in its own process: rensa, datasketch, datatrove, or ours (Spark / local).

Run by ``benchmarks/near_dedup_bench.py`` (which measures the process tree's peak memory and CPU time); the peers
run in ``.venv-bench``. Every method uses the same shingles (``spark_jobs.near_dedup.shingles.TOKEN``, word
5-grams), 250 permutations as 25 bands x 10 rows and seed 42, with 2 workers. Output JSON: the duplicate pairs the
method reports, its wall time, (ours) the wall time of each phase, and (Spark) the session start-up time, which is
reported separately.

    .venv-bench/bin/python benchmarks/near_dedup_peers.py rensa --corpus DIR --work DIR --out pairs.json
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import re
import struct
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from spark_jobs.near_dedup.shingles import TOKEN, tokens  # noqa: E402  (needs the repository on the path first)

NGRAM, NUM_PERM, BANDS, ROWS, SEED, WORKERS, THRESHOLD = 5, 250, 25, 10, 42, 2, 0.8
ROWS_PER_TASK = 1000  # files a rensa worker sketches per task


def shingle_strings(text: str) -> set[str]:
    toks = tokens(text)
    return {" ".join(toks[i : i + NGRAM]) for i in range(len(toks) - NGRAM + 1)}


def read_shards(corpus: Path) -> list[list[dict]]:
    return [[json.loads(line) for line in f.open()] for f in sorted(corpus.glob("shard-*.jsonl"))]


# -- rensa --------------------------------------------------------------------------------------------------------

def _rensa_sketches(task: tuple[str, int, int]):
    """(row numbers of shingled files, their RMinHash sketches) of rows [start, stop) of the corpus Parquet file.

    Shingles as rensa takes them: each file's distinct 5-grams of tokens as byte strings (the token bytes joined by
    a space; the fastest way we found to build them in Python, no decode)."""
    import pyarrow.parquet as pq
    from rensa import RMinHash

    path, start, stop = task
    table = pq.ParquetFile(path)
    texts, first = [], 0
    for group in range(table.num_row_groups):
        rows = table.metadata.row_group(group).num_rows
        if first + rows > start and first < stop:
            column = table.read_row_group(group, columns=["content"]).column("content").to_pylist()
            texts += column[max(0, start - first) : stop - first]
        first += rows
    rows, sets = [], []
    for i, text in enumerate(texts):
        toks = TOKEN.findall(text.encode("utf-8", "surrogatepass"))
        grams = list(set(map(b" ".join, zip(*(toks[j:] for j in range(NGRAM)), strict=False))))
        if grams:
            rows.append(start + i)
            sets.append(grams)
    return rows, RMinHash.from_token_sets(sets, NUM_PERM, SEED)


def run_rensa(corpus: Path, work: Path) -> dict:
    """rensa 0.5.0: R-MinHash sketches on 2 worker processes, then its LSH (25 bands) in the parent: every file
    queried, candidates kept when rensa's own Jaccard estimate is >= the threshold (rensa does not verify)."""
    from multiprocessing import Pool

    import pyarrow.parquet as pq
    from rensa import RMinHashLSH

    path = str(corpus / "files.parquet")
    t0 = time.perf_counter()
    ids = pq.read_table(path, columns=["id"]).column("id").to_pylist()
    tasks = [(path, i, min(i + ROWS_PER_TASK, len(ids))) for i in range(0, len(ids), ROWS_PER_TASK)]
    rows, sketches = [], []
    with Pool(WORKERS) as pool:
        for part_rows, part in pool.imap(_rensa_sketches, tasks):
            rows += part_rows
            sketches += part
    t_sketch = time.perf_counter()
    lsh = RMinHashLSH(THRESHOLD, NUM_PERM, BANDS)
    lsh.insert_many(sketches, 0)
    pairs = set()
    for a, candidates in enumerate(lsh.query_all(sketches)):
        for b in candidates:
            if a < b and sketches[a].jaccard(sketches[b]) >= THRESHOLD:
                x, y = ids[rows[a]], ids[rows[b]]
                pairs.add((min(x, y), max(x, y)))
    end = time.perf_counter()
    return {"pairs": sorted(pairs), "seconds": end - t0,
            "phases": {"shingles and sketches": t_sketch - t0, "LSH, candidates, estimate filter": end - t_sketch}}


# -- datasketch ---------------------------------------------------------------------------------------------------

def _datasketch_signatures(texts: list[str]):
    from datasketch import MinHash
    from xxhash import xxh3_64_intdigest

    def low32(data: bytes) -> int:
        return xxh3_64_intdigest(data) & 0xFFFFFFFF

    out = []
    for text in texts:
        sh = shingle_strings(text)
        if not sh:
            out.append(None)
            continue
        m = MinHash(num_perm=NUM_PERM, seed=SEED, hashfunc=low32)
        m.update_batch([s.encode() for s in sh])
        out.append(m.hashvalues)
    return out


def run_datasketch(corpus: Path, work: Path) -> dict:
    """MinHash per document on 2 worker processes, then MinHashLSH insert + query in the parent."""
    from multiprocessing import Pool

    from datasketch import MinHash, MinHashLSH

    docs = [d for shard in read_shards(corpus) for d in shard]
    t0 = time.perf_counter()
    chunks = [[d["text"] for d in docs[i::WORKERS]] for i in range(WORKERS)]
    with Pool(WORKERS) as pool:
        parts = pool.map(_datasketch_signatures, chunks)
    sigs = [None] * len(docs)
    for w, part in enumerate(parts):
        for j, sig in enumerate(part):
            sigs[w + j * WORKERS] = sig
    lsh = MinHashLSH(num_perm=NUM_PERM, params=(BANDS, ROWS))
    hashes = {}
    for doc, sig in zip(docs, sigs, strict=True):
        if sig is not None:
            hashes[doc["id"]] = MinHash(num_perm=NUM_PERM, seed=SEED, hashvalues=sig, scheme="affine32")
            lsh.insert(doc["id"], hashes[doc["id"]])
    pairs = set()
    for key, m in hashes.items():
        for other in lsh.query(m):
            if other != key:
                pairs.add((min(key, other), max(key, other)))
    return {"pairs": sorted(pairs), "seconds": time.perf_counter() - t0}


# -- datatrove ----------------------------------------------------------------------------------------------------

def _code_signature_step():
    """datatrove's signature step with our code shingles instead of its prose normaliser + spaCy tokenizer."""
    import numpy as np
    from datatrove.pipeline.base import PipelineStep
    from datatrove.pipeline.dedup.minhash import MinhashDedupSignature
    from datatrove.utils.hashing import create_hash_func

    class CodeMinhashSignature(MinhashDedupSignature):
        def __init__(self, output_folder, config):
            PipelineStep.__init__(self)
            from datatrove.io import get_datafolder

            self.output_folder = get_datafolder(output_folder)
            self.config = config
            self.num_hashes = config.num_buckets * config.hashes_per_bucket
            self._parameters = None
            self._hash_func = create_hash_func(config.hash_config)
            self.skip_existing_sigs = False

        def get_shingles(self, text: str):
            return np.fromiter((self._hash_func(s.encode()) for s in shingle_strings(text)),
                               dtype=np.uint64).reshape((-1, 1))

    return CodeMinhashSignature


def run_datatrove(corpus: Path, work: Path, full: bool = False) -> dict:
    """datatrove's signature stage (2 tasks, 2 workers) and bucket stage (25 tasks, 2 workers); pairs from .dups.

    ``full``: also its cluster stage (union-find over the pairs) and filter stage (re-read the shards, write the
    kept documents), i.e. the whole pipeline a datatrove user runs to get a deduplicated corpus, as ours does.
    """
    from datatrove.executor import LocalPipelineExecutor
    from datatrove.pipeline.dedup.minhash import (
        MinhashConfig,
        MinhashDedupBuckets,
        MinhashDedupCluster,
        MinhashDedupFilter,
    )
    from datatrove.pipeline.readers import JsonlReader
    from datatrove.pipeline.writers import JsonlWriter
    from datatrove.utils.hashing import HashConfig

    shards = read_shards(corpus)
    config = MinhashConfig(n_grams=NGRAM, num_buckets=BANDS, hashes_per_bucket=ROWS, seed=SEED,
                           hash_config=HashConfig(precision=32, hash_fc="xxhash"))
    t0 = time.perf_counter()
    signature = LocalPipelineExecutor(
        pipeline=[JsonlReader(str(corpus), glob_pattern="shard-*.jsonl"),
                  _code_signature_step()(str(work / "sigs"), config)],
        tasks=len(shards), workers=WORKERS, logging_dir=str(work / "logs-sigs"), start_method="fork")
    signature.run()
    buckets = LocalPipelineExecutor(
        pipeline=[MinhashDedupBuckets(str(work / "sigs"), str(work / "buckets"), config=config)],
        tasks=BANDS, workers=WORKERS, logging_dir=str(work / "logs-buckets"), start_method="fork")
    buckets.run()
    if full:
        LocalPipelineExecutor(
            pipeline=[MinhashDedupCluster(str(work / "buckets"), str(work / "remove_ids"), config=config)],
            tasks=1, logging_dir=str(work / "logs-cluster")).run()
        LocalPipelineExecutor(
            pipeline=[JsonlReader(str(corpus), glob_pattern="shard-*.jsonl"),
                      MinhashDedupFilter(str(work / "remove_ids")),
                      JsonlWriter(str(work / "deduplicated"), compression=None)],
            tasks=len(shards), workers=WORKERS, logging_dir=str(work / "logs-filter"), start_method="fork").run()
    seconds = time.perf_counter() - t0
    pairs = set()
    record = struct.Struct("<4I")
    for dups in sorted((work / "buckets").glob("*.dups")):
        data = dups.read_bytes()
        for f1, d1, f2, d2 in record.iter_unpack(data):
            a, b = shards[f1][d1]["id"], shards[f2][d2]["id"]
            if a != b:
                pairs.add((min(a, b), max(a, b)))
    kept = None
    if full:
        kept = sum(1 for f in (work / "deduplicated").glob("*.jsonl") for _ in f.open())
    return {"pairs": sorted(pairs), "seconds": seconds, "kept": kept}


# -- ours ---------------------------------------------------------------------------------------------------------

class _Phases(logging.Handler):
    """Collects the engines' ``near dedup: <phase> done in <s> s`` records (``spark_jobs.near_dedup.phases``)."""

    def __init__(self):
        super().__init__(logging.INFO)
        self.seconds: dict[str, float] = {}

    def emit(self, record):
        match = re.fullmatch(r"near dedup: (.+) done in ([0-9.]+) s", record.getMessage())
        if match:
            self.seconds[match.group(1)] = float(match.group(2))


def _phases() -> _Phases:
    from spark_jobs.near_dedup.signing import warm_up_kernels

    warm_up_kernels()  # compiled (or loaded from numba's cache) before the clock starts, as in a built image
    handler = _Phases()
    logger = logging.getLogger("spark_jobs.near_dedup")
    logger.setLevel(logging.INFO)
    logger.addHandler(handler)
    return handler

def _our_config(verify: bool):
    from spark_jobs.near_dedup.config import NearDedupConfig

    # File level only: the peers have no repository level, and pair metrics are file pairs.
    return NearDedupConfig(ngram=NGRAM, num_perm=NUM_PERM, bands=BANDS, rows=ROWS, seed=SEED, verify=verify,
                           repo_level=False, output_partitions=WORKERS)


def run_spark(corpus: Path, work: Path, verify: bool = True, conf: dict[str, str] | None = None) -> dict:
    """The Spark job on the local profile's session (``conf``: extra Spark settings on top of the profile's).

    Start-up, timed apart from the job: the session (a JVM), its first job, and the start of its Python workers
    (one task per core through an identity ``mapInArrow``, importing nothing of ours). A long-lived session -- the
    local chain's warm driver, a cluster's executors -- pays these once, not per job; the job's own imports and
    kernel loads stay in the job. ``python_workers_seconds`` reports the last part alone."""
    from lake.config import load_config
    from lake.schemas import FILES, to_spark_schema
    from spark_jobs.near_dedup.spark import dedup_frames
    from spark_jobs.session import spark_session

    cfg = load_config(REPO / "config" / "local.yaml",
                      overrides={"spark": {"master": f"local[{WORKERS}]", "conf": dict(conf or {})}})
    phases = _phases()
    t0 = time.perf_counter()
    spark = spark_session(cfg, "near-dedup-bench")
    spark.range(1).count()
    t1 = time.perf_counter()
    slots = spark.sparkContext.defaultParallelism
    spark.range(0, slots, 1, slots).mapInArrow(lambda batches: batches, "id long").count()  # pickled by value
    startup, workers = time.perf_counter() - t0, time.perf_counter() - t1
    t0 = time.perf_counter()
    files = spark.read.schema(to_spark_schema(FILES)).parquet(str(corpus / "files.parquet"))  # as the stage reads
    result = dedup_frames(files, _our_config(verify), snapshot="bench")
    for name, df in (("files", result.kept), ("duplicates", result.duplicates)):
        df.write.mode("overwrite").parquet(str(work / name))
    pairs = sorted((r.src, r.dst) for r in result.edges.collect())  # one job (toLocalIterator runs one a partition)
    seconds = time.perf_counter() - t0
    spark.stop()
    return {"pairs": pairs, "seconds": seconds, "startup_seconds": startup, "python_workers_seconds": workers,
            "metrics": result.metrics, "phases": phases.seconds}


def run_local(corpus: Path, work: Path, verify: bool = True) -> dict:
    import pyarrow.parquet as pq

    from spark_jobs.near_dedup.local import dedup_table

    phases = _phases()
    t0 = time.perf_counter()
    result = dedup_table(pq.read_table(corpus / "files.parquet"), _our_config(verify), snapshot="bench")
    pq.write_table(result.kept, work / "files.parquet")
    return {"pairs": sorted(result.edges), "seconds": time.perf_counter() - t0, "metrics": result.metrics,
            "phases": phases.seconds}


METHODS = {"rensa": run_rensa, "datasketch": run_datasketch, "datatrove": run_datatrove, "spark": run_spark, "local": run_local,
           "datatrove-full": lambda c, w: run_datatrove(c, w, full=True),
           "spark-noverify": lambda c, w: run_spark(c, w, verify=False)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("method", choices=sorted(METHODS))
    parser.add_argument("--corpus", required=True, type=Path, help="folder with files.parquet and shard-*.jsonl")
    parser.add_argument("--work", required=True, type=Path, help="scratch folder for this method's outputs")
    parser.add_argument("--out", required=True, type=Path, help="JSON result file")
    args = parser.parse_args(argv)
    args.work.mkdir(parents=True, exist_ok=True)
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    result = METHODS[args.method](args.corpus, args.work)
    args.out.write_text(json.dumps(result))
    print(f"{args.method}: {len(result['pairs'])} pairs in {result['seconds']:.1f}s", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
