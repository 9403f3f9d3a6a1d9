"""Record schemas of the quality stages' datasets (beside the shared ones in lake/schemas.py)."""

from __future__ import annotations

import pyarrow as pa

# One oracle rating of one sampled file (oracle_label/labels). ``oracle`` names the rater ("rules:..." for the
# rule-based teacher, never an LLM), ``prompt_version`` the rating prompt's version.
LABELS = pa.schema([
    pa.field("id", pa.string(), nullable=False),
    pa.field("repo", pa.string(), nullable=False),
    pa.field("path", pa.string(), nullable=False),
    pa.field("language", pa.string(), nullable=False),
    pa.field("sha256", pa.string(), nullable=False),
    pa.field("label", pa.float32(), nullable=False),       # 0-10
    pa.field("oracle", pa.string(), nullable=False),
    pa.field("prompt_version", pa.string(), nullable=False),
    pa.field("answer", pa.string(), nullable=False),       # the oracle's full answer, for audits
])

# A sampled file the oracle gave no usable rating for (oracle_label/failures): kept for audit, never guessed.
LABEL_FAILURES = pa.schema([
    pa.field("id", pa.string(), nullable=False),
    pa.field("language", pa.string(), nullable=False),
    pa.field("reason", pa.string(), nullable=False),       # empty_answer | unparseable_answer | ...
    pa.field("answer", pa.string()),
    pa.field("oracle", pa.string(), nullable=False),
    pa.field("prompt_version", pa.string(), nullable=False),
])

# The scorer's rating of one file (score/scores), on the 0-10 scale (model output x 10, unclipped).
SCORES = pa.schema([
    pa.field("id", pa.string(), nullable=False),
    pa.field("language", pa.string(), nullable=False),
    pa.field("score", pa.float32(), nullable=False),
    pa.field("num_tokens", pa.int32(), nullable=False),    # tokens scored, BOS included
    pa.field("truncated", pa.bool_(), nullable=False),     # the file was longer than max_tokens
])
