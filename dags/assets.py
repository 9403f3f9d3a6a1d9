"""The Assets that link the pipeline's DAGs, and what their events' extra carries.

Every event: the partition of the last id the run processed, all of them (a run may process several), the
committed stage's ``uri`` and ``records_out``. A run triggered by several events processes every id they name.

- snapshot Assets: ``{"snapshot": id, "snapshots": [ids], ...}``
- ``SCORER``: ``{"scorer": version, "scorers": [...], "mae_heldout", "threshold", "base_model", "oracle", ...}``
- ``RELEASE``: ``{"release": name, "releases": [...], "snapshots", "base_release", "tokenizer", "manifest", ...}``
  (``manifest``: the URI of the release's manifest.json, lake/release.py)
- ``DATASET``: ``{"release": name, "releases": [...], ...}``
- ``MODEL``: ``{"release": name, "releases": [...], "model": URI of the Hugging Face export, "init": "scratch" or
  "base_release", "base_release": name or null, ...}``
"""

from airflow.sdk import Asset

LAKE = "seedcoder://lake"

# Per snapshot (monthly, backfillable): the data chain.
CRAWLED = Asset(f"{LAKE}/crawl", group="seedcoder")            # crawl DAG -> dedup DAG
DEDUPED = Asset(f"{LAKE}/dedup", group="seedcoder")            # dedup DAG (exact + near) -> filters DAG
FILTERED = Asset(f"{LAKE}/filters", group="seedcoder")         # filters DAG -> quality DAG
CURATED = Asset(f"{LAKE}/quality_filter", group="seedcoder")   # quality DAG: a snapshot curated (-> a release cut)
# Versioned models and releases: cut and trained when a user asks, never on a monthly crawl.
SCORER = Asset(f"{LAKE}/models/scorer", group="seedcoder")     # scorer DAG: a new scorer version (extra: scorer)
RELEASE = Asset(f"{LAKE}/release", group="seedcoder")          # release DAG -> dataset DAG (extra: release)
DATASET = Asset(f"{LAKE}/dataset", group="seedcoder")          # dataset DAG -> pretrain DAG (extra: release)
MODEL = Asset(f"{LAKE}/pretrain", group="seedcoder")           # pretrain DAG -> evaluate DAG, RL (extra: release, model)
EVALUATED = Asset(f"{LAKE}/evaluate", group="seedcoder")       # evaluate DAG (extra: release, model, headline numbers)
ABLATION = Asset(f"{LAKE}/ablation", group="seedcoder")        # ablation DAG: one arm and seed trained + evaluated
RL_POLICY = Asset(f"{LAKE}/rl", group="seedcoder")              # rl DAG: the final policy of GRPO, evaluated
