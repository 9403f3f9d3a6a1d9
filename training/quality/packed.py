"""Packed scoring: many files in one flat sequence, attention kept within each file (no padding at all).

Length-sorted batches still pad each row up to its batch's longest file; packing removes that waste, which
matters on a GPU where compute, not the Python loop, is the limit. The forward pass reuses the Llama
modules of a Hugging Face ``LlamaForSequenceClassification`` (weights untouched) and swaps only attention:
torch's variable-length flash attention (``torch.nn.attention.varlen.varlen_attn``) on CUDA, or a causal
SDPA per file elsewhere (the same math, used by the CPU tests). Positions restart at 0 for every file, so a
file's score does not depend on its neighbours in the pack.
"""

from __future__ import annotations

from collections.abc import Sequence


def pack_rows(lengths: Sequence[int], row_tokens: int) -> list[list[int]]:
    """First-fit-decreasing packing of files (indices) into rows of at most ``row_tokens`` tokens.

    >>> pack_rows([5, 3, 4, 2], 8)
    [[0, 1], [2, 3]]
    """
    rows: list[list[int]] = []
    room: list[int] = []
    for i in sorted(range(len(lengths)), key=lambda i: (-lengths[i], i)):
        for r, free in enumerate(room):
            if lengths[i] <= free:
                rows[r].append(i)
                room[r] -= lengths[i]
                break
        else:
            rows.append([i])
            room.append(row_tokens - lengths[i])
    return rows


def _attention(q, k, v, cu, max_len: int, use_varlen: bool):
    """q: (T, Hq, D), k/v: (T, Hkv, D) -> (T, Hq, D), causal within each [cu[i], cu[i+1])."""
    import torch
    import torch.nn.functional as F

    if use_varlen:
        from torch.nn.attention.varlen import varlen_attn

        return varlen_attn(q, k, v, cu, cu, max_len, max_len, window_size=(-1, 0), enable_gqa=True)
    out = torch.empty_like(q)
    bounds = cu.tolist()
    for start, end in zip(bounds[:-1], bounds[1:], strict=True):
        qs, ks, vs = (t[start:end].transpose(0, 1) for t in (q, k, v))
        out[start:end] = F.scaled_dot_product_attention(qs, ks, vs, is_causal=True, enable_gqa=True).transpose(0, 1)
    return out


def packed_scores(model, docs: Sequence[Sequence[int]], *, use_varlen: bool | None = None):
    """Regression-head outputs (0-1 scale) of ``docs`` (token id lists) packed into one sequence."""
    import torch
    from transformers.models.llama.modeling_llama import apply_rotary_pos_emb

    base = model.base_model
    device = base.embed_tokens.weight.device
    use_varlen = device.type == "cuda" if use_varlen is None else use_varlen
    lengths = [len(d) for d in docs]
    flat = torch.tensor([t for d in docs for t in d], dtype=torch.long, device=device)[None]
    cu = torch.tensor([0, *lengths], dtype=torch.int32, device=device).cumsum(0, dtype=torch.int32)
    positions = torch.cat([torch.arange(n, device=device) for n in lengths])[None]
    hidden = base.embed_tokens(flat)
    cos, sin = base.rotary_emb(hidden, positions)
    total = flat.shape[1]
    for layer in base.layers:
        attn = layer.self_attn
        x = layer.input_layernorm(hidden)
        q = attn.q_proj(x).view(1, total, -1, attn.head_dim).transpose(1, 2)
        k = attn.k_proj(x).view(1, total, -1, attn.head_dim).transpose(1, 2)
        v = attn.v_proj(x).view(1, total, -1, attn.head_dim)[0]
        q, k = apply_rotary_pos_emb(q, k, cos, sin)
        out = _attention(q[0].transpose(0, 1).contiguous(), k[0].transpose(0, 1).contiguous(), v.contiguous(),
                         cu, max(lengths), use_varlen)
        hidden = hidden + attn.o_proj(out.reshape(1, total, -1))
        hidden = hidden + layer.mlp(layer.post_attention_layernorm(hidden))
    hidden = base.norm(hidden)
    return model.score(hidden[0, cu[1:].long() - 1]).squeeze(-1)
