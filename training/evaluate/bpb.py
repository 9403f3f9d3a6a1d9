"""Held-out loss in bits per byte, per language: tokenizer-independent, so models with different vocabularies
(ablation arms, releases) compare on the same files.

A file is scored as the model saw documents in training: after an end-of-sequence token (the previous document's
end), every token of the file predicted from the ones before it, in consecutive windows of ``window`` tokens
(each window restarts its positions, as packed rows do). bits = sum of the tokens' negative log-likelihoods / ln 2;
bits per byte = bits / the file's UTF-8 bytes. A language's figure sums bits and bytes over its files.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass


@dataclass(frozen=True)
class HeldoutFile:
    file_id: str
    language: str
    text: str


def clip_text(text: str, max_bytes: int) -> str:
    """``text`` cut to at most ``max_bytes`` UTF-8 bytes, at a line boundary when there is one.

    >>> clip_text("ab\\ncd\\nef", 6)
    'ab\\ncd\\n'
    >>> clip_text("abcdef", 4)
    'abcd'
    """
    data = text.encode("utf-8")
    if len(data) <= max_bytes:
        return text
    head = data[:max_bytes].decode("utf-8", "ignore")
    cut = head.rfind("\n")
    return head[: cut + 1] if cut > 0 else head


def pick_files(rows: Iterable[dict], *, per_language: int, max_bytes: int) -> list[HeldoutFile]:
    """The first ``per_language`` files of each language by id (a deterministic choice), clipped."""
    by_language: dict[str, list[dict]] = defaultdict(list)
    for row in rows:
        if row.get("content"):
            by_language[row["language"]].append(row)
    out = []
    for language in sorted(by_language):
        for row in sorted(by_language[language], key=lambda r: r["id"])[:per_language]:
            out.append(HeldoutFile(row["id"], language, clip_text(row["content"], max_bytes)))
    return out


def windows(ids: list[int], context: int, window: int) -> list[tuple[list[int], list[int]]]:
    """(inputs, targets) pairs covering every token of ``ids`` once; the first input is ``context``.

    >>> windows([5, 6, 7, 8, 9], 2, 2)
    [([2, 5], [5, 6]), ([6, 7], [7, 8]), ([8], [9])]
    """
    sequence = [context, *ids]
    out = []
    for start in range(1, len(sequence), window):
        stop = min(start + window, len(sequence))
        out.append((sequence[start - 1:stop - 1], sequence[start:stop]))
    return out


def window_nats(model, ids, batch) -> list[float]:
    """Summed negative log-likelihood (nats) of each row's targets; ``ids`` are right-padded input rows.

    No attention mask: attention is causal and padding sits after each row's last real token, so no real token
    attends to padding (and the mask-free batch keeps SDPA on its fast causal kernel). Where the model's logits are
    the output projection of its last hidden state (no soft-capping or scaling: Llama and its kin), the projection
    and the cross-entropy run one row at a time, on that row's real tokens only: the whole batch's logits
    ([rows x window x vocab] floats) never exist, which on a CPU was half the time of the pass.
    """
    import torch
    import torch.nn.functional as F

    device = ids.device
    plain_head = all(getattr(model.config, key, None) in (None, 1.0)
                     for key in ("final_logit_softcapping", "logit_scale", "output_multiplier_scale"))
    if not plain_head:
        logits = model(input_ids=ids).logits.float()
        return [F.cross_entropy(logits[r, :len(t)], torch.tensor(t, device=device), reduction="sum").item()
                for r, (_i, _inputs, t) in enumerate(batch)]
    hidden = model.base_model(input_ids=ids).last_hidden_state
    head = model.get_output_embeddings()
    return [F.cross_entropy(head(hidden[r, :len(t)]).float(), torch.tensor(t, device=device), reduction="sum").item()
            for r, (_i, _inputs, t) in enumerate(batch)]


def bits_per_byte(model_dir: str, files: list[HeldoutFile], *, window: int, batch_tokens: int) -> dict:
    """Per language (and ``overall``): files, bytes, tokens, bits and bits per byte under the model."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    device = "cuda" if torch.cuda.is_available() else "cpu"
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32).to(device).eval()
    eos = tokenizer.eos_token_id
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else eos
    pieces = []  # (file index, inputs, targets)
    for i, f in enumerate(files):
        ids = tokenizer.encode(f.text, add_special_tokens=False)
        pieces += [(i, inputs, targets) for inputs, targets in windows(ids, eos, window)]
    nats = [0.0] * len(files)
    tokens = [0] * len(files)
    pieces.sort(key=lambda p: len(p[1]))
    rows = max(1, batch_tokens // window)
    with torch.no_grad():
        for start in range(0, len(pieces), rows):
            batch = pieces[start:start + rows]
            width = max(len(p[1]) for p in batch)
            ids = torch.tensor([p[1] + [pad] * (width - len(p[1])) for p in batch], device=device)
            for (index, _inputs, targets), value in zip(batch, window_nats(model, ids, batch), strict=True):
                nats[index] += value
                tokens[index] += len(targets)
    totals: dict[str, dict] = {}
    for f, n, t in zip(files, nats, tokens, strict=True):
        for key in (f.language, "overall"):
            entry = totals.setdefault(key, {"files": 0, "bytes": 0, "tokens": 0, "bits": 0.0})
            entry["files"] += 1
            entry["bytes"] += len(f.text.encode("utf-8"))
            entry["tokens"] += t
            entry["bits"] += n / math.log(2)
    for entry in totals.values():
        entry["bits_per_byte"] = round(entry["bits"] / entry["bytes"], 5) if entry["bytes"] else None
        entry["bits"] = round(entry["bits"], 2)
    return totals
