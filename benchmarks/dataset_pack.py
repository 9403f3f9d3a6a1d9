"""Tokenize + pack throughput of the dataset build, against two common recipes, on real code.

    python benchmarks/dataset_pack.py --megabytes 16 --seq-len 8192 --repeat 3

Corpus: the ``.py`` files of this interpreter's standard library and site-packages (real code, sorted, cut at
``--megabytes``). Tokenizer: our byte-level BPE (``spark_jobs.dataset.tokenizer.train``) trained on the first
quarter of the corpus. All three contenders use that same tokenizer and produce rows of ``--seq-len`` tokens
with an eos after every document, so the numbers compare the pipelines, not the vocabularies:

- ``ours``: ``documents.encode_documents`` (``encode_batch_fast`` in batches of 256, special-token look-alikes
  kept as text) + ``lake.token_shards.ShardWriter`` (numpy packing, doc starts, ``.npy`` shards on disk).
- ``hf_group_texts``: the Hugging Face ``run_clm.py`` recipe: batch-encode with offsets (what a fast
  tokenizer's ``__call__`` does), concatenate the id lists with ``itertools.chain`` and cut ``block_size``
  chunks as Python lists (``group_texts``), then store them as one array. Re-implemented here (the recipe's
  ``datasets`` dependency is not installed); no document boundaries kept.
- ``nanogpt_prepare``: nanoGPT's ``data/openwebtext/prepare.py`` recipe: encode one document at a time,
  append eot, write everything into one flat ``np.memmap`` and cut rows at read time. No boundaries kept.

Prints tokens/s (median of ``--repeat`` runs) and ratios vs ours. No timing assertions anywhere: measured only.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import platform
import statistics
import sys
import sysconfig
import tempfile
import time
from pathlib import Path

import numpy as np

from lake.storage import LocalStorage
from lake.token_shards import ShardWriter
from lake.tokens import EOS, PAD, SPECIAL_IDS
from spark_jobs.dataset.documents import encode_documents
from spark_jobs.dataset.tokenizer import train


def corpus(megabytes: float) -> list[str]:
    roots = [Path(sysconfig.get_paths()["stdlib"]), Path(sysconfig.get_paths()["purelib"])]
    budget = int(megabytes * 1e6)
    texts: list[str] = []
    for root in roots:
        for path in sorted(root.rglob("*.py")):
            try:
                text = path.read_text(encoding="utf-8")
            except (UnicodeDecodeError, OSError):
                continue
            if not text:
                continue
            texts.append(text)
            budget -= len(text.encode())
            if budget <= 0:
                return texts
    return texts


def ours(tokenizer, texts: list[str], seq_len: int, out: Path) -> int:
    writer = ShardWriter(LocalStorage(out), "bench", "file_level", seq_len=seq_len, pad_id=SPECIAL_IDS[PAD])
    tokens = 0
    for start in range(0, len(texts), 256):
        docs = [((False, t),) for t in texts[start : start + 256]]
        for ids in encode_documents(tokenizer, docs):
            writer.add(ids)
            tokens += ids.size
    writer.close()
    return tokens


def hf_group_texts(tokenizer, texts: list[str], seq_len: int, out: Path) -> int:
    eos = SPECIAL_IDS[EOS]
    blocks: list[list[int]] = []
    tokens = 0
    for start in range(0, len(texts), 1000):  # datasets.map(batched=True) default batch size
        encoded = [e.ids + [eos] for e in tokenizer.encode_batch(texts[start : start + 1000],
                                                                  add_special_tokens=False)]
        concatenated = list(itertools.chain(*encoded))
        tokens += len(concatenated)
        total = (len(concatenated) // seq_len) * seq_len
        blocks += [concatenated[i : i + seq_len] for i in range(0, total, seq_len)]
    np.save(out / "hf.npy", np.array(blocks, dtype=np.uint32))
    return tokens


def nanogpt_prepare(tokenizer, texts: list[str], seq_len: int, out: Path) -> int:
    eos = SPECIAL_IDS[EOS]
    ids = [tokenizer.encode(t, add_special_tokens=False).ids + [eos] for t in texts]
    total = sum(len(x) for x in ids)
    arr = np.memmap(out / "train.bin", dtype=np.uint32, mode="w+", shape=(total,))
    pos = 0
    for chunk in ids:
        arr[pos : pos + len(chunk)] = chunk
        pos += len(chunk)
    arr.flush()
    return total


CONTENDERS = {"ours": ours, "hf_group_texts": hf_group_texts, "nanogpt_prepare": nanogpt_prepare}


def main(argv: list[str] | None = None) -> int:
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from benchmarks.quiet import MachineGuard, add_quiet_arguments

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--megabytes", type=float, default=16.0, help="corpus size in MB of UTF-8 (default 16)")
    parser.add_argument("--seq-len", type=int, default=8192, help="row length in tokens (default 8192)")
    parser.add_argument("--vocab-size", type=int, default=32768, help="BPE vocabulary (default 32768)")
    parser.add_argument("--repeat", type=int, default=3, help="runs per contender; the median is reported")
    parser.add_argument("--json", type=Path, default=None, help="also write the results here")
    add_quiet_arguments(parser)
    args = parser.parse_args(argv)
    guard = MachineGuard.from_args(args)

    texts = corpus(args.megabytes)
    size = sum(len(t.encode()) for t in texts)
    print(f"corpus: {len(texts)} files, {size / 1e6:.1f} MB of real Python", flush=True)
    t0 = time.perf_counter()
    tokenizer = train(iter(texts[: max(1, len(texts) // 4)]), vocab_size=args.vocab_size)
    print(f"tokenizer: {tokenizer.get_vocab_size()} tokens, trained in {time.perf_counter() - t0:.1f}s", flush=True)

    results: dict[str, dict] = {}
    for name, fn in CONTENDERS.items():
        times, tokens = [], 0
        for _ in range(args.repeat):
            with tempfile.TemporaryDirectory() as tmp:
                start = time.perf_counter()
                tokens = fn(tokenizer, texts, args.seq_len, Path(tmp))
                times.append(time.perf_counter() - start)
        seconds = statistics.median(times)
        results[name] = {"tokens": tokens, "seconds": round(seconds, 3), "tokens_per_s": round(tokens / seconds),
                         "mb_per_s": round(size / 1e6 / seconds, 2)}
        print(f"{name:<16} {tokens:>11,} tokens  {seconds:7.2f}s  {tokens / seconds:>12,.0f} tokens/s  "
              f"{size / 1e6 / seconds:6.2f} MB/s", flush=True)
    base = results["ours"]["tokens_per_s"]
    for name, r in results.items():
        r["ratio_vs_ours"] = round(r["tokens_per_s"] / base, 3)
        print(f"ratio {name:<16} {r['ratio_vs_ours']:.3f} x ours")
    meta = {"machine": f"{platform.machine()}, {os.cpu_count()} cores", "load_avg": os.getloadavg(),
            "corpus_files": len(texts), "corpus_bytes": size, "seq_len": args.seq_len,
            "vocab": tokenizer.get_vocab_size(), "repeat": args.repeat}
    print(json.dumps(meta))
    if args.json:
        args.json.write_text(json.dumps({"meta": meta, "results": results}, indent=2) + "\n")
    print(guard.report())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
