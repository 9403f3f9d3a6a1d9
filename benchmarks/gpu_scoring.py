"""GPU scoring throughput of a 1.3B-shaped scorer in bf16 on real file lengths, as a share of the matmul rate.

One short call on a GPU machine (about 3-5 minutes on an H100/H200); ``--tiny`` runs the same code on CPU in
seconds (a small model, few files) so the script is known to work before a GPU is available.

Model: LlamaForSequenceClassification (num_labels=1) with Llama-2 1.3B shape (hidden 2048, 24 layers, 16
heads, FFN 5504, vocab 32000), random weights (speed does not depend on them), bf16. Inputs: real files (the
Python standard library), tokenized with a byte-level BPE trained on the spot, cut at ``--max-tokens``; their
lengths are the real distribution, not a uniform 2048. Methods, all on the same token ids:

- ``uniform_full``: plain transformers on full 32 x 2048 batches (the issue's reference: 46.7% on an H200);
- ``padded``: plain transformers on real lengths in file order, 32 files per batch, padded (attention mask);
- ``bucketed``: ours, length-sorted batches under a token budget, mask-free causal (training.quality.scorer);
- ``packed``: ours, files packed into rows with variable-length flash attention (training.quality.packed);
- ``vllm``: vLLM's pooling runner (LLM.classify), the production path (skipped with ``--no-vllm``).

Useful FLOPs count real tokens only: 2 x (non-embedding parameters) per token plus causal attention,
2 x layers x hidden x L^2 per file of L tokens. The rate is compared with a bf16 matmul measured in the same
run (8192^3 GEMMs), and with the card's datasheet peak when known.

    python benchmarks/gpu_scoring.py                  # on a GPU machine
    python benchmarks/gpu_scoring.py --tiny           # CPU smoke run
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import sysconfig
import tempfile
import time
from pathlib import Path

log = logging.getLogger("bench.gpu_scoring")
DATASHEET_BF16_TFLOPS = {"H100": 989.4, "H200": 989.4, "A100": 312.0, "L40S": 362.0}
FULL = {"hidden_size": 2048, "intermediate_size": 5504, "num_hidden_layers": 24, "num_attention_heads": 16,
        "num_key_value_heads": 16, "vocab_size": 32000}
TINY = {"hidden_size": 128, "intermediate_size": 256, "num_hidden_layers": 2, "num_attention_heads": 2,
        "num_key_value_heads": 2, "vocab_size": 1024}


def sync(device):
    import torch

    if device.type == "cuda":
        torch.cuda.synchronize()


def matmul_tflops(device, dtype, n: int, repeat: int) -> float:
    import torch

    a = torch.randn(n, n, device=device, dtype=dtype)
    b = torch.randn(n, n, device=device, dtype=dtype)
    for _ in range(2):
        a @ b
    sync(device)
    t0 = time.perf_counter()
    for _ in range(repeat):
        a @ b
    sync(device)
    return 2 * n**3 * repeat / (time.perf_counter() - t0) / 1e12


def real_token_ids(vocab: int, files: int, max_tokens: int, bos: int):
    """Token ids of real files (BOS + head), and the tokenizer that made them."""
    from training.quality.tiny_base import code_corpus, train_tokenizer

    tokenizer = train_tokenizer(vocab, code_corpus(max_files=300, max_bytes=3_000_000))
    stdlib = Path(sysconfig.get_paths()["stdlib"])
    paths = sorted(p for p in stdlib.rglob("*.py") if "site-packages" not in p.parts)
    texts = [p.read_text(encoding="utf-8", errors="replace") for p in paths[:files]]
    encodings = tokenizer.backend_tokenizer.encode_batch(texts, add_special_tokens=False)
    return [[bos, *e.ids[: max_tokens - 1]] for e in encodings], tokenizer


def useful_flops(lengths: list[int], n_params: int, layers: int, hidden: int) -> float:
    tokens = sum(lengths)
    return 2.0 * n_params * tokens + sum(2.0 * layers * hidden * n * n for n in lengths)


def time_method(name, fn, device, work: list, lengths: list[int], flops: float, peak: float, padded: int) -> dict:
    import torch

    with torch.inference_mode():
        fn(work[:1])
        sync(device)
        t0 = time.perf_counter()
        fn(work)
        sync(device)
    seconds = time.perf_counter() - t0
    tokens = sum(lengths)
    out = {"method": name, "seconds": round(seconds, 3), "tokens": tokens, "tokens_per_s": round(tokens / seconds),
           "files_per_s": round(len(lengths) / seconds, 1), "tflops": round(flops / seconds / 1e12, 2),
           "pct_of_matmul": round(100 * flops / seconds / 1e12 / peak, 1),
           "padding_share": round(1 - tokens / padded, 3) if padded else 0.0}
    log.info("%-12s %s", name, json.dumps(out))
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    parser.add_argument("--tiny", action="store_true", help="tiny model, few files, CPU allowed (smoke run)")
    parser.add_argument("--files", type=int, default=None, help="files to score (default 3000; tiny 40)")
    parser.add_argument("--max-tokens", type=int, default=None, help="tokens per file (default 2048; tiny 128)")
    parser.add_argument("--token-budget", type=int, default=None, help="tokens per batch/row (default 65536)")
    parser.add_argument("--no-vllm", action="store_true", help="skip the vLLM pooling runner")
    parser.add_argument("--out", type=Path, default=None, help="also write the results as JSON here")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")

    import torch
    from transformers import LlamaConfig, LlamaForSequenceClassification

    from training.quality.packed import pack_rows, packed_scores
    from training.quality.scorer import pad_batch, pooled_scores, token_budget_batches

    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device.type != "cuda" and not args.tiny:
        raise SystemExit("no CUDA device: run with --tiny for the CPU smoke run")
    shape = TINY if args.tiny else FULL
    files = args.files or (40 if args.tiny else 3000)
    max_tokens = args.max_tokens or (128 if args.tiny else 2048)
    budget = args.token_budget or (1024 if args.tiny else 65536)
    dtype = torch.bfloat16
    name = torch.cuda.get_device_name() if device.type == "cuda" else "cpu"
    peak = matmul_tflops(device, dtype, 512 if args.tiny else 8192, 3 if args.tiny else 50)
    datasheet = next((v for k, v in DATASHEET_BF16_TFLOPS.items() if k in name), None)
    log.info("device %s: measured bf16 matmul %.1f TFLOP/s (datasheet %s)", name, peak, datasheet)

    config = LlamaConfig(**shape, max_position_embeddings=max(4096, max_tokens), num_labels=1,
                         problem_type="regression", pad_token_id=2, bos_token_id=0, eos_token_id=1,
                         tie_word_embeddings=False)
    torch.manual_seed(0)
    with torch.device(device):
        model = LlamaForSequenceClassification(config).to(dtype).eval()
    n_params = sum(p.numel() for n, p in model.named_parameters() if "embed_tokens" not in n)
    ids, tokenizer = real_token_ids(shape["vocab_size"], files, max_tokens, bos=0)
    lengths = [len(i) for i in ids]
    flops = useful_flops(lengths, n_params, shape["num_hidden_layers"], shape["hidden_size"])
    log.info("%d files, %d tokens (mean %.0f, max %d), %.2fB non-embedding parameters", len(ids), sum(lengths),
             sum(lengths) / len(ids), max(lengths), n_params / 1e9)

    def plain(batch_rows):
        for rows in batch_rows:
            input_ids, n = pad_batch(rows, config.pad_token_id)
            mask = (torch.arange(input_ids.shape[1])[None] < n[:, None]).long()
            model(input_ids=input_ids.to(device), attention_mask=mask.to(device))

    def bucketed(batch_rows):
        for rows in batch_rows:
            input_ids, n = pad_batch(rows, config.pad_token_id)
            pooled_scores(model, input_ids.to(device), n.to(device))

    def packed(pack_list):
        for docs in pack_list:
            packed_scores(model, docs)

    results = []
    # The reference: the same real tokens cut into full rows of max_tokens, 32 rows per batch (no padding).
    flat = [t for doc in ids for t in doc]
    n_full = max(32, len(flat) // max_tokens // 32 * 32)
    flat = flat * (n_full * max_tokens // len(flat) + 1)
    full_rows = [[flat[r * max_tokens:(r + 1) * max_tokens] for r in range(b, b + 32)] for b in range(0, n_full, 32)]
    full_lengths = [max_tokens] * sum(len(r) for r in full_rows)
    results.append(time_method("uniform_full", plain, device, full_rows, full_lengths,
                               useful_flops(full_lengths, n_params, shape["num_hidden_layers"], shape["hidden_size"]),
                               peak, 0))
    padded_rows = [ids[b:b + 32] for b in range(0, len(ids), 32)]
    results.append(time_method("padded", plain, device, padded_rows, lengths, flops, peak,
                               sum(len(r) * max(map(len, r)) for r in padded_rows)))
    buckets = [[ids[i] for i in b] for b in token_budget_batches(lengths, budget)]
    results.append(time_method("bucketed", bucketed, device, buckets, lengths, flops, peak,
                               sum(len(b) * max(map(len, b)) for b in buckets)))
    packs = [[ids[i] for i in row] for row in pack_rows(lengths, budget)]
    results.append(time_method("packed", packed, device, packs, lengths, flops, peak, 0))
    if not args.no_vllm:
        results.append(run_vllm(model, tokenizer, ids, lengths, flops, peak, max_tokens, device))
    report = {"device": name, "matmul_tflops": round(peak, 1), "datasheet_tflops": datasheet, "files": len(ids),
              "tokens": sum(lengths), "max_tokens": max_tokens, "token_budget": budget,
              "params_non_embedding": n_params, "shape": shape, "results": results}
    print(json.dumps(report, indent=2))
    if args.out:
        args.out.write_text(json.dumps(report, indent=2) + "\n")
    return 0


def run_vllm(model, tokenizer, ids, lengths, flops, peak, max_tokens, device) -> dict:
    """vLLM's pooling runner on the same token ids (the checkpoint goes to a temporary directory first)."""
    from training.quality.scorer import VllmScorer

    with tempfile.TemporaryDirectory(prefix="gpu-scoring-") as tmp:
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        scorer = VllmScorer(tmp, dtype="bfloat16", max_model_len=max_tokens,
                            gpu_memory_utilization=0.5 if device.type == "cuda" else 0.1)
        return time_method("vllm", lambda work: scorer.score(work), device, ids, lengths, flops, peak, 0)


if __name__ == "__main__":
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "true")
    sys.exit(main())
