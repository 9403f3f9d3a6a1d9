"""A small lake for pretraining tests: a release, its tokenizer and packed shards written with the real writers.

The corpus is a handful of short functions, each packed as a plain document and as an SPM FIM sample with a
fixed split, repeated so a tiny model can learn them within a test: then a FIM prompt from the corpus has a
known right answer.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[3]
SNIPPETS = [
    ("def add(a, b):\n    return ", "a + b", "\n\n\nprint(add(1, 2))\n"),
    ("def greet(name):\n    return ", "'hello ' + name", "\n\n\nprint(greet('x'))\n"),
    ("class Stack:\n    def __init__(self):\n        self.items = ", "[]", "\n\n    def push(self, x):\n"
     "        self.items.append(x)\n"),
    ("for i in range(10):\n    ", "print(i * i)", "\nprint('done')\n"),
]


def build_shards(lake, release: str, *, seq_len: int = 64, repeat: int = 40, vocab_size: int = 400,
                 sources: tuple[str, ...] = ("file_level",), base: str | None = None) -> dict:
    """Commit release ``release`` (the snippets as its files; ``base``: the release it continues, whose tokenizer it
    then pins), its ``tokenizer`` and a ``dataset_build`` stage; returns the index."""
    import hashlib

    from lake import tokens
    from lake.release import partition
    from lake.stage import StageRun
    from lake.token_shards import SOURCES, ShardWriter, build_index, write_index
    from spark_jobs.dataset import tokenizer as tok
    from spark_jobs.dataset.documents import encode_documents
    from tests.release_fixtures import commit_release
    from tests.spark_jobs.dataset.dataset_fixtures import file_rows

    part = partition(release)
    rows = file_rows("test/snippets", {f"s{i}.py": p + m + s for i, (p, m, s) in enumerate(SNIPPETS)})
    if base:
        files = {n: lake.storage.read_bytes(f"{lake.require(partition(base), 'tokenizer').prefix}/tokenizer/{n}")
                 for n in tokens.FILES}
        commit_release(lake, release, rows, tokenizer="pin", tokenizer_from=base, base=base,
                       tokenizer_sha256=hashlib.sha256(files["tokenizer.json"]).hexdigest())
        tokenizer = tokens.from_json(files["tokenizer.json"].decode())
    else:
        commit_release(lake, release, rows)
        texts = [p + m + s for p, m, s in SNIPPETS] * 4
        tokenizer = tok.train(iter(texts), vocab_size=vocab_size, min_frequency=1)
        files = tok.hf_files(tokenizer)
    with StageRun(lake, part, "tokenizer") as run:
        for name, data in files.items():
            run.write_bytes(f"tokenizer/{name}", data)
    docs = []
    for _ in range(repeat):
        for prefix, middle, suffix in SNIPPETS:
            docs.append(((False, prefix + middle + suffix),))
            docs.append(((True, tokens.FIM_SUFFIX), (False, suffix), (True, tokens.FIM_PREFIX), (False, prefix),
                         (True, tokens.FIM_MIDDLE), (False, middle)))
    encoded = encode_documents(tokenizer, docs)
    pad, eos = tokens.SPECIAL_IDS[tokens.PAD], tokens.SPECIAL_IDS[tokens.EOS]
    with StageRun(lake, part, "dataset_build") as run:
        shards = {}
        for source in sources:
            writer = ShardWriter.for_run(run, source, seq_len=seq_len, pad_id=pad, shard_tokens=seq_len * 50)
            shards[source] = writer.add_all(encoded).close()
        index = build_index(seq_lens={s: seq_len for s in SOURCES}, shards=shards,
                            vocab_size=tokenizer.get_vocab_size(), pad_id=pad, eos_id=eos, bos_id=None,
                            tokenizer={"release": release, "stage": "tokenizer", "uri": ""})
        write_index(run, index)
    return index


def pretrain_section(**overrides) -> dict:
    """A tiny, fast ``stages.pretrain`` for tests."""
    section = {"preset": "tiny", "micro_batch_size": 4, "grad_accum_steps": 1, "warmup_steps": 5,
               "zero_stage": 2, "checkpoint_every": 10, "log_every": 5, "threads": 1, "export_dtype": "float32",
               "peak_flops": 1e11, "phases": [{"name": "regular", "steps": 20, "lr": 3e-3}]}
    section.update(overrides)
    return section


def write_config(path: Path, lake_root: Path, scratch: Path, **overrides) -> Path:
    section = pretrain_section(scratch_dir=str(scratch), **overrides)
    path.write_text(yaml.safe_dump({"profile": "local", "lake": {"root": str(lake_root)},
                                    "stages": {"pretrain": section}}))
    return path


def stage_command(release: str, config: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "training.pretrain", "--release", release, "--config", str(config), *extra]


def stage_env(**extra: str) -> dict:
    env = dict(os.environ) | extra
    env.pop("RANK", None)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
    env.setdefault("OMP_NUM_THREADS", "1")
    return env


def run_stage(release: str, config: Path, *extra: str, timeout: int = 600,
              env: dict | None = None) -> subprocess.CompletedProcess:
    proc = subprocess.run(stage_command(release, config, *extra), cwd=REPO, env=stage_env(**(env or {})), text=True,
                          capture_output=True, timeout=timeout)
    if proc.returncode != 0:
        raise AssertionError(f"pretrain exited {proc.returncode}:\n{proc.stdout[-4000:]}\n{proc.stderr[-6000:]}")
    return proc
