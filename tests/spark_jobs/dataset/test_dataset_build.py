"""The dataset_build stage end to end on Spark local[2]: shards decode back to the source documents."""

from __future__ import annotations

import collections
from pathlib import Path

import numpy as np
import pytest
from dataset_fixtures import commit_table, curated_rows, score_table

from lake import tokens
from lake.config import load_config
from lake.stage import Partition, StageRun
from lake.token_shards import SOURCES, TokenShards, read_index
from spark_jobs.dataset import build, fim
from spark_jobs.dataset import tokenizer as tok
from spark_jobs.dataset.documents import decode_document, render
from spark_jobs.dataset.repo_concat import split_document

pytestmark = pytest.mark.spark
REPO = Path(__file__).resolve().parents[3]
R = Partition.release("s1")
STAGES = {
    "tokenizer": {"vocab_size": 900},
    "dataset_build": {"seq_len": {"file_level": 256, "repo_level": 1024, "commits": 512},
                      "fim_rate": {"file_level": 0.5, "repo_level": 0.5, "commits": 0.0},
                      "parts": 3, "shard_tokens": 2048, "repo_budget_tokens": 60_000, "repo_keep_fraction": 0.75,
                      # every repository trains here (gone/repo would be held out at 0.1); test_dataset_heldout.py
                      # covers the held-out split
                      "heldout_fraction": 0.0},
}


@pytest.fixture(scope="module")
def curated(tmp_path_factory, spark):
    """A release (files, scores, commits, tokenizer) built once and then one committed build."""
    from tests.release_fixtures import commit_release

    root = tmp_path_factory.mktemp("lake")
    cfg = load_config(REPO / "config" / "local.yaml", overrides={"lake": {"root": str(root)}, "stages": STAGES})
    lake = cfg.open_lake()
    rows = curated_rows()
    commit_release(lake, "s1", rows, commits=commit_table(rows), scores=score_table(rows, {"acme/rs"}))
    tok.run(lake, "s1", cfg.stage("tokenizer", tok.TokenizerConfig))
    stats = run_build(cfg, lake)
    return cfg, lake, rows, stats


def run_build(cfg, lake, **overrides):
    stage_cfg = cfg.stage("dataset_build", build.DatasetBuildConfig).model_copy(update=overrides)
    with StageRun(lake, R, "dataset_build", resume=stage_cfg.resume) as run:
        return build.build(run, cfg, stage_cfg)


def decoded(lake, source):
    tokenizer = tokens.load(lake, R)
    return [decode_document(tokenizer, ids) for ids in TokenShards(lake, R, source).documents()]


def test_shards_decode_back_to_the_source_documents(curated):
    _cfg, lake, rows, stats = curated
    index = read_index(lake, R)
    assert set(index["sources"]) == set(SOURCES)
    assert [index["sources"][s]["fim_rate"] for s in SOURCES] == [0.5, 0.5, 0.0]
    assert [index["sources"][s]["aligned"] for s in SOURCES] == [False, True, True]

    files = decoded(lake, "file_level")
    assert collections.Counter(render(fim.invert(d)) for d in files) == collections.Counter(
        r["content"] for r in rows if r["content"] and r["path"] != "app/copied.py")
    n_fim = sum(fim.is_fim(d) for d in files)
    assert stats["metrics"]["sources"]["file_level"]["fim_documents"] == n_fim and 0 < n_fim < len(files)

    repos = [split_document(fim.invert(d)) for d in decoded(lake, "repo_level")]
    by_first = {files[0][0].split("/")[0]: files for files in repos}
    contents = {(r["repo"], r["path"]): r["content"] for r in rows}
    for files_of_repo in repos:
        assert all(content in contents.values() for _path, content in files_of_repo)
    json_paths = [p for p, _c in by_first["json"]]
    pos = {p: i for i, p in enumerate(json_paths)}
    assert pos["json/scanner.py"] < pos["json/decoder.py"] < pos["json/__init__.py"] < pos["json/tool.py"]
    assert pos["json/encoder.py"] < pos["json/__init__.py"]
    app = [p for p, _c in by_first["app"]]
    assert app.index("app/db.py") < app.index("app/models.py") < app.index("app/service.py") < app.index(
        "app/main.py")
    assert set(app[-3:]) == {"schema.sql", "deploy.sh", "static/index.html"}
    # acme/rs scores low (dropped by repo_keep_fraction), solo/one has one file: neither is a repo document
    assert {p for r in repos for p, _c in r} & {"src/main.rs", "one.py"} == set()
    assert stats["metrics"]["repositories"] == {"repositories": 5, "too_few_files": 1, "too_large": 0, "selected": 3}

    commits = sorted(render(d) for d in decoded(lake, "commits"))
    assert len(commits) == 2  # the empty merge is dropped; a commit of a repository without files is kept
    assert commits[0].startswith("<commit_message>\nAdd a name to the User model")
    assert '<file path="app/models.py">' in commits[0] and "<file" not in commits[1]
    assert commits[0].endswith('<change status="M" path="app/models.py">\n+        self.name = name\n\n</change>\n')
    assert "copied.py" not in " ".join(p for r in repos for p, _c in r)
    assert stats["drop_reasons"] == {"commit_without_changes": 1, "empty_file": 1, "contaminated_file": 1,
                                     "contaminated_commit": 1}
    assert stats["metrics"]["decontamination"]["eval_sets"] == ["humaneval", "mbpp"]
    assert stats["metrics"]["tokens_per_source"] == {s: index["sources"][s]["num_tokens"] for s in SOURCES}


def test_rows_keep_document_boundaries(curated):
    _cfg, lake, _rows, _stats = curated
    shards = TokenShards(lake, R, "file_level")
    eos = tokens.SPECIAL_IDS[tokens.EOS]
    for i in range(len(shards)):
        row, starts = shards[i]
        valid = shards.valid_tokens(i)
        ends = np.flatnonzero(row[:valid] == eos)
        # a document starts right after every eos inside the row
        assert set((ends + 1)[ends + 1 < valid].tolist()) <= set(starts.tolist())
        assert all(row[s] != eos for s in starts)


def shard_arrays(lake) -> dict[str, list[np.ndarray]]:
    return {s: [np.array(t) for t, _ in TokenShards(lake, R, s)] for s in SOURCES}


def same_arrays(a: dict, b: dict) -> bool:
    return all(len(a[s]) == len(b[s]) and all(np.array_equal(x, y) for x, y in zip(a[s], b[s], strict=True))
               for s in SOURCES)


def test_a_rebuild_gives_identical_shards_and_a_killed_build_resumes(curated, spark, monkeypatch):
    cfg, lake, _rows, _stats = curated
    first = shard_arrays(lake)

    # A build killed after packing (before its index and commit) leaves an attempt with every group marked done.
    # It runs with another Spark partitioning: groups must not depend on it.
    def killed(*_a, **_k):
        raise KeyboardInterrupt("killed")

    monkeypatch.setattr(build, "write_index", killed)
    partitions = spark.conf.get("spark.sql.shuffle.partitions")
    spark.conf.set("spark.sql.shuffle.partitions", "1")
    try:
        with pytest.raises(KeyboardInterrupt):
            run_build(cfg, lake)
    finally:
        spark.conf.set("spark.sql.shuffle.partitions", partitions)
    monkeypatch.undo()
    open_attempt = StageRun(lake, R, "dataset_build", resume=True)
    markers = [k for k in lake.storage.list(f"{open_attempt.attempt_prefix}/_shards") if "-0000" in k]
    assert markers
    # Lose one group's marker, as if the kill hit while that group was being packed.
    lake.storage.delete_prefix(markers[0])
    resumed = run_build(cfg, lake)
    assert resumed["metrics"]["resumed_groups"] == len(markers) - 1
    # groups packed under 1 and under 4 shuffle partitions, byte-equal to the first build
    assert same_arrays(first, shard_arrays(lake))


def test_long_context_documents_that_fit_a_row_are_never_cut(curated):
    _cfg, lake, _rows, _stats = curated
    for source in ("repo_level", "commits"):
        shards = TokenShards(lake, R, source)
        starts = [i * shards.seq_len + int(s) for i in range(len(shards)) for s in shards[i][1]]
        lengths = [d.size for d in shards.documents()]
        assert len(starts) == len(lengths) > 0
        fitting = [(s, n) for s, n in zip(starts, lengths, strict=True) if n <= shards.seq_len]
        assert fitting
        assert all(s // shards.seq_len == (s + n - 1) // shards.seq_len for s, n in fitting)


def test_a_poisoned_commit_is_a_reject_and_the_build_commits(curated, tmp_path):
    """A commit row with a null change path (nullable in the lake schema) breaks its sample: one reject, the rest
    of the build as before."""
    import pyarrow as pa

    from lake.schemas import COMMITS
    from tests.release_fixtures import commit_release

    _cfg0, _lake0, rows, stats0 = curated
    cfg = load_config(REPO / "config" / "local.yaml", overrides={"lake": {"root": str(tmp_path)}, "stages": STAGES})
    lake = cfg.open_lake()
    poison = {"repo": "acme/app", "sha": "c9" * 20, "parent_sha": "c4" * 20, "author_date": None,
              "message": "Poisoned", "readme": None, "tree": None,
              "changes": [{"path": None, "status": "M", "diff": "+x\n", "truncated": False}]}
    commits = pa.concat_tables([commit_table(rows), pa.Table.from_pylist([poison], schema=COMMITS)])
    commit_release(lake, "s1", rows, commits=commits, scores=score_table(rows, {"acme/rs"}))
    tok.run(lake, "s1", cfg.stage("tokenizer", tok.TokenizerConfig))
    stats = run_build(cfg, lake)
    assert lake.commit_info(R, "dataset_build") is not None, "the job committed"
    assert stats["metrics"]["sources"]["commits"]["documents"] == stats0["metrics"]["sources"]["commits"]["documents"]
    assert stats["metrics"]["sources"]["repo_level"]["documents"] == stats0["metrics"]["sources"]["repo_level"]["documents"]
    assert stats["drop_reasons"]["commit_document_error"] == 1
    [reject] = lake.read_table(R, "dataset_build", "rejects").to_pylist()
    assert (reject["source"], reject["doc_id"], reject["reason"]) == (
        "commits", f"acme/app@{'c9' * 20}", "commit_document_error")
    assert reject["detail"].startswith("AttributeError: ")
    assert stats["metrics"]["item_failures"]["failures"] == 1


def test_a_repository_whose_documents_fail_is_one_error_row():
    """The applyInPandas body: a repository whose concatenation raises gives one error row, not a failed task."""
    import pandas as pd

    from spark_jobs.dataset.sources import repo_documents_pandas

    pdf = pd.DataFrame({"repo": ["o/r", "o/r"], "path": ["a.py", None], "language": ["Python", "Python"],
                        "content": ["import b\n", "x = 1\n"]})
    out = repo_documents_pandas(pdf, tokenizer_json=tok_json_for_test(), seed=0, budget_tokens=1000,
                                max_parse_bytes=1000)
    assert list(out["doc_id"]) == ["o/r"] and list(out["source"]) == ["repo_level"]
    reason, _, detail = out["error"][0].partition("|")
    assert reason == "repo_document_error" and detail.split(":")[0] in ("TypeError", "AttributeError")


def tok_json_for_test() -> str:
    return tok.train(iter(["import b\n", "x = 1\n"] * 20), vocab_size=300).to_str()
