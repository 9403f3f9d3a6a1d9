"""The Assets that link the pipeline's DAGs; each event's extra carries {"snapshot": id, "uri": ...}."""

from airflow.sdk import Asset

LAKE = "seedcoder://lake"

CRAWLED = Asset(f"{LAKE}/crawl", group="seedcoder")            # crawl DAG -> dedup DAG
DEDUPED = Asset(f"{LAKE}/dedup", group="seedcoder")            # dedup DAG (exact + near) -> filters DAG
FILTERED = Asset(f"{LAKE}/filters", group="seedcoder")         # filters DAG -> quality DAG
CURATED = Asset(f"{LAKE}/quality_filter", group="seedcoder")   # quality DAG -> dataset DAG
DATASET = Asset(f"{LAKE}/dataset", group="seedcoder")          # dataset DAG -> pretrain DAG
MODEL = Asset(f"{LAKE}/pretrain", group="seedcoder")           # pretrain DAG -> evaluate DAG (and RL)
EVALUATED = Asset(f"{LAKE}/evaluate", group="seedcoder")       # evaluate DAG; its extra carries the headline numbers
ABLATION = Asset(f"{LAKE}/ablation", group="seedcoder")        # ablation DAG: one arm and seed trained + evaluated
