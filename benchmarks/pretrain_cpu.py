"""Tokens/s of DeepSpeed ZeRO-2 vs plain torch on the tiny preset, same data, same process, interleaved rounds.

The data is real code: the Python standard library's ``.py`` files, tokenized with a byte-level BPE trained on
them (the tokenizer stage's code) and packed with the dataset build's writer into a throw-away lake. Both
engines start from the same weights, draw the same rows from the same mixture loader, and use torch AdamW with
the same clip; DeepSpeed runs ZeRO-2 over gloo on one rank (what the local profile launches). Rounds alternate
between the engines so that load from other jobs on the machine hits both alike; the table gives the median.
The first loss of each engine is printed too: they start from the same point, so they must agree.

    .venv-gpu/bin/python benchmarks/pretrain_cpu.py --steps 20 --rounds 3
"""

from __future__ import annotations

import argparse
import logging
import os
import platform
import statistics
import sys
import sysconfig
import tempfile
import time
from datetime import date
from pathlib import Path

log = logging.getLogger("pretrain_cpu")


def stdlib_texts(max_files: int, max_bytes: int) -> list[str]:
    root = Path(sysconfig.get_paths()["stdlib"])
    texts = []
    for path in sorted(root.rglob("*.py")):
        if "test" in path.parts or "site-packages" in path.parts:
            continue
        text = path.read_text(encoding="utf-8", errors="replace")
        if 200 < len(text) < max_bytes:
            texts.append(text)
        if len(texts) >= max_files:
            break
    return texts


def build_lake(root: Path, *, seq_len: int, vocab_size: int, max_files: int) -> None:
    from lake import tokens
    from lake.stage import Lake, Partition, StageRun
    from lake.token_shards import SOURCES, ShardWriter, build_index, write_index
    from spark_jobs.dataset import tokenizer as tok
    from spark_jobs.dataset.documents import encode_documents

    lake = Lake.at(str(root))
    texts = stdlib_texts(max_files, 60_000)
    tokenizer = tok.train(iter(texts), vocab_size=vocab_size)
    bench = Partition.release("bench")
    with StageRun(lake, bench, "tokenizer") as run:
        for name, data in tok.hf_files(tokenizer).items():
            run.write_bytes(f"tokenizer/{name}", data)
    docs = encode_documents(tokenizer, [((False, t),) for t in texts])
    pad, eos = tokens.SPECIAL_IDS[tokens.PAD], tokens.SPECIAL_IDS[tokens.EOS]
    with StageRun(lake, bench, "dataset_build") as run:
        shards = ShardWriter.for_run(run, "file_level", seq_len=seq_len, pad_id=pad).add_all(docs).close()
        write_index(run, build_index(seq_lens={s: seq_len for s in SOURCES}, shards={"file_level": shards},
                                     vocab_size=tokenizer.get_vocab_size(), pad_id=pad, eos_id=eos, bos_id=None,
                                     tokenizer={"release": "bench", "stage": "tokenizer", "uri": ""}))
    log.info("corpus: %d stdlib files, %d tokens in %d rows of %d", len(texts), sum(len(d) for d in docs),
             sum(s.sequences for s in shards), seq_len)


def run_rounds(lake_root: Path, args) -> dict[str, dict]:
    import torch

    from lake.stage import Lake, Partition
    from lake.token_shards import TokenShards
    from training.pretrain.config import PretrainConfig
    from training.pretrain.data import MixtureLoader
    from training.pretrain.engine import make_engine
    from training.pretrain.presets import build_model, preset
    from training.pretrain.train import DistEnv, init_distributed

    torch.set_num_threads(args.threads)
    init_distributed(DistEnv(), torch.device("cpu"))
    lake = Lake.at(str(lake_root))
    source = TokenShards(lake, Partition.release("bench"), "file_level")
    spec = preset("tiny").with_vocab(int(source.index["vocab_size"]))
    engines, loaders, results = {}, {}, {}
    for name in ("deepspeed", "torch"):
        cfg = PretrainConfig(engine=name, zero_stage=2, micro_batch_size=args.micro_batch, threads=args.threads)
        model = build_model(spec, seed=0, bos_id=0, eos_id=2, pad_id=1)
        engines[name] = make_engine(model, cfg, 1, torch.device("cpu"))
        loaders[name] = MixtureLoader({"file_level": source}, seed=0, micro_batch_size=args.micro_batch,
                                      grad_accum_steps=1)
        results[name] = {"tokens_per_s": [], "first_loss": None}
    step = 0
    for round_ in range(args.rounds + 1):  # round 0 warms both up and is not counted
        for name in ("deepspeed", "torch"):
            engine, loader = engines[name], loaders[name]
            loader.step, loader.cursors = step, dict.fromkeys(loader.cursors, step * args.micro_batch)
            tokens, t0 = 0, time.perf_counter()
            for s in range(step, step + args.steps):
                batch = loader.step_batches(s, {"file_level": 1.0})[0]
                loss = float(engine.forward_backward(batch))
                engine.step(1e-3)
                tokens += batch.input_ids.size
                if results[name]["first_loss"] is None:
                    results[name]["first_loss"] = loss
            seconds = time.perf_counter() - t0
            if round_:
                results[name]["tokens_per_s"].append(tokens / seconds)
            log.info("round %d %-9s %.0f tokens/s (%d steps, %.1fs)", round_, name, tokens / seconds, args.steps,
                     seconds)
        step += args.steps
    return results


def main(argv: list[str] | None = None) -> int:
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from benchmarks.quiet import MachineGuard, add_quiet_arguments

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--steps", type=int, default=20, help="optimizer steps per engine per round")
    parser.add_argument("--rounds", type=int, default=3, help="timed rounds (after one warm-up round)")
    parser.add_argument("--micro-batch", type=int, default=4, help="rows per step")
    parser.add_argument("--seq-len", type=int, default=256, help="packed row length")
    parser.add_argument("--vocab-size", type=int, default=4096, help="BPE vocabulary trained on the corpus")
    parser.add_argument("--max-files", type=int, default=300, help="stdlib files in the corpus")
    parser.add_argument("--threads", type=int, default=2, help="torch intra-op threads")
    add_quiet_arguments(parser)
    args = parser.parse_args(argv)
    guard = MachineGuard.from_args(args)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s", stream=sys.stderr)
    with tempfile.TemporaryDirectory() as tmp:
        build_lake(Path(tmp), seq_len=args.seq_len, vocab_size=args.vocab_size, max_files=args.max_files)
        results = run_rounds(Path(tmp), args)
    ds, pt = (statistics.median(results[n]["tokens_per_s"]) for n in ("deepspeed", "torch"))
    print(f"# pretrain CPU benchmark, {date.today()}, {platform.machine()} {os.cpu_count()} cores, "
          f"load average {os.getloadavg()[0]:.1f}")
    print(f"# command: {' '.join([Path(sys.executable).name, *sys.argv])}")
    print("| engine | tokens/s (median) | rounds | first loss |")
    print("|---|---:|---|---:|")
    for name, tps in (("DeepSpeed ZeRO-2 (gloo, 1 rank)", ds), ("plain torch", pt)):
        key = "deepspeed" if name.startswith("DeepSpeed") else "torch"
        rounds = ", ".join(f"{x:.0f}" for x in results[key]["tokens_per_s"])
        print(f"| {name} | {tps:.0f} | {rounds} | {results[key]['first_loss']:.4f} |")
    print(f"\nDeepSpeed / torch tokens/s: {ds / pt:.3f}")
    print(guard.report())
    return 0


if __name__ == "__main__":
    sys.exit(main())
