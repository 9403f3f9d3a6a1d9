"""Scorer versions: a trained quality scorer is an immutable artifact under ``{lake}/models/scorer/{version}/``.

    models/scorer/{version}/oracle_label/   labels (the sample, its oracle, the prompt version, the snapshot)
    models/scorer/{version}/train_scorer/   model/ (Hugging Face format + scorer.json), heldout, calibration

``scorer.json`` (the scorer's card) holds the version, its training labels' provenance, the base model, the
held-out MAE and the score threshold fixed at training time on its calibration sample; the monthly quality runs
pin a version and apply that threshold, so scores and keep/drop decisions are comparable from month to month.
A version is made once (the scorer DAG, when a user asks for one): labelling or training a committed version
again is refused.
"""

from __future__ import annotations

import json
from pathlib import Path

from lake.stage import Lake, Partition
from training.quality.stage_io import materialize

LABELS_STAGE = "oracle_label"
TRAIN_STAGE = "train_scorer"
CARD = "scorer.json"


class ScorerVersionExists(ValueError):
    """The version is published (its train_scorer is committed): versions are immutable."""


def partition(version: str) -> Partition:
    return Partition.scorer(version)


def refuse_published(lake: Lake, version: str) -> None:
    info = lake.commit_info(partition(version), TRAIN_STAGE)
    if info is not None:
        raise ScorerVersionExists(f"scorer version {version!r} already exists (committed {info.committed_at}, "
                                  f"{lake.storage.uri(info.prefix)}): versions are immutable; train a new version")


def published(lake: Lake) -> list[str]:
    return [v for v in lake.scorer_versions() if lake.commit_info(partition(v), TRAIN_STAGE) is not None]


def labelled_snapshot(lake: Lake, version: str) -> str:
    """The snapshot whose files version ``version`` was labelled on."""
    return lake.require(partition(version), LABELS_STAGE).stats["metrics"]["snapshot"]


def model_dir(lake: Lake, version: str) -> Path:
    """A local directory with the version's scorer (HF format); the lake's own files on a local lake."""
    return materialize(lake, partition(version), TRAIN_STAGE, "model")


def card(lake: Lake, version: str) -> dict:
    """The version's ``scorer.json``."""
    info = lake.require(partition(version), TRAIN_STAGE)
    return json.loads(lake.storage.read_bytes(f"{info.prefix}/model/{CARD}"))
