"""Continued pretraining: start a release's run from the final model of the release it continues.

A release's manifest may name a base release (lake/release.py). With ``init: base_release`` (or ``auto`` when the
base has a trained model) the run's weights start as the base release's exported model, and the run follows
``continue_phases``. The two must agree on everything the weights depend on: the tokenizer (the release must pin
the base's, else token ids mean other things) and the architecture (every tensor's name and shape). A resumed run
loads its own newest checkpoint over these weights, so the exact-resume guarantee is the from-scratch one.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass
from pathlib import Path

from lake import release as rel
from lake import tokens
from lake.stage import Lake, Partition
from training.pretrain.checkpoint import ArchitectureMismatch

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class BaseInit:
    """Where a continued run starts: the base release, its model's location, and the local copy."""

    release: str
    uri: str
    directory: Path


def resolve(lake: Lake, release: Partition, init: str) -> BaseInit | None:
    """The base model to start from, or None for a run from scratch (``init`` as in PretrainConfig)."""
    if init == "scratch":
        return None
    manifest = rel.read_manifest(lake, release.name)
    base = manifest.base_release
    if base is None:
        if init == "base_release":
            raise ValueError(f"init: base_release, but release {release.name!r} names no base release (cut it "
                             f"with --base NAME)")
        return None
    if lake.commit_info(rel.partition(base.name), "pretrain") is None:
        if init == "base_release":
            raise ValueError(f"init: base_release, but base release {base.name!r} has no trained model: run the "
                             f"pretrain DAG on {base.name!r} first")
        log.warning("base release %s has no trained model: release %s trains from scratch", base.name, release.name)
        return None
    mine = hashlib.sha256(tokens.tokenizer_json(lake, release).encode()).hexdigest()
    theirs = hashlib.sha256(tokens.tokenizer_json(lake, rel.partition(base.name)).encode()).hexdigest()
    if mine != theirs:
        raise ValueError(f"release {release.name!r} has another tokenizer than its base {base.name!r}: continued "
                         f"pretraining needs the same token ids; cut the release with --tokenizer pin (or set "
                         f"stages.pretrain.init: scratch)")
    return BaseInit(base.name, rel.model_uri(lake, base.name), rel.model_dir(lake, base.name))


def load_weights(model, directory: Path) -> int:
    """Copy the exported weights of ``directory`` into ``model``; refuses any name or shape difference.

    Returns the number of tensors loaded.
    """
    import torch
    from safetensors.torch import load_file

    files = sorted(directory.glob("*.safetensors"))
    if not files:
        raise FileNotFoundError(f"no safetensors weights in {directory}")
    state: dict[str, torch.Tensor] = {}
    for path in files:
        state.update(load_file(str(path)))
    own = model.state_dict()
    if model.config.tie_word_embeddings:
        state.setdefault("lm_head.weight", state.get("model.embed_tokens.weight"))
    missing = sorted(set(own) - set(state))
    unexpected = sorted(set(state) - set(own))
    shapes = sorted(k for k in set(own) & set(state) if tuple(own[k].shape) != tuple(state[k].shape))
    if missing or unexpected or shapes:
        details = [f"missing {missing[:5]}" if missing else "", f"unexpected {unexpected[:5]}" if unexpected else "",
                   ", ".join(f"{k}: base {tuple(state[k].shape)} vs run {tuple(own[k].shape)}" for k in shapes[:5])]
        raise ArchitectureMismatch(f"the base model in {directory} does not fit this run's architecture "
                                   f"({'; '.join(d for d in details if d)}): use the base release's preset")
    with torch.no_grad():
        for name, tensor in own.items():
            tensor.copy_(state[name].to(tensor.dtype))
    return len(own)
