"""The three document sources of the build as Spark DataFrames of ``(source, doc_id, pieces)``.

Repository and commit documents are made per repository with ``applyInPandas`` (tree-sitter parsing, graph
ordering and BM25 are per-repository work), file documents with plain column expressions.

Per-item fault isolation (:mod:`lake.faults`): a repository or a commit whose documents cannot be made yields one
row with ``error`` set (``Type: message``) instead of failing the Spark task; a file whose imports cannot be read
stays in its repository's document without dependency edges. Rows with an ``error`` are the build's rejects.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pandas as pd

from lake.faults import isolated
from spark_jobs.dataset import repo_concat
from spark_jobs.dataset.commits import CommitBounds, RepoIndex, commit_document
from spark_jobs.dataset.documents import SPARK_PIECES, to_rows
from spark_jobs.dataset.imports import dependency_graph

DOC_SCHEMA = f"source string, doc_id string, pieces {SPARK_PIECES}, error string"


@dataclass
class BuiltDocuments:
    """The documents to pack, and how to count what happened to the inputs (Spark actions, run on demand)."""

    documents: Any
    count_actions: list[Callable[[], dict[str, Any]]]

    def counts(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for action in self.count_actions:
            out.update(action())
        return out


def _aggregate(df, **exprs) -> Callable[[], dict[str, Any]]:
    """One Spark job computing several numbers of ``df``."""

    def run() -> dict[str, Any]:
        row = df.agg(*[e.alias(name) for name, e in exprs.items()]).first()
        return {name: (row[name] or 0) for name in exprs}

    return run


def _frame(source: str, doc_ids: list[str], pieces: list[list[dict]], errors: list | None = None) -> pd.DataFrame:
    """A DOC_SCHEMA frame; object columns even when empty, which Arrow needs for the nested pieces."""
    return pd.DataFrame({"source": pd.Series([source] * len(doc_ids), dtype=object),
                         "doc_id": pd.Series(doc_ids, dtype=object),
                         "pieces": pd.Series(pieces, dtype=object),
                         "error": pd.Series(errors or [None] * len(doc_ids), dtype=object)})


def _failed(source: str, item: str, error) -> pd.DataFrame:
    """The one row that stands for an item whose documents could not be made."""
    return _frame(source, [item], [[]], [f"{error.reason}|{error.detail}"])


def _tokens_of(tokenizer, texts: list[str]) -> list[int]:
    return [len(e.ids) for e in tokenizer.encode_batch_fast(texts, add_special_tokens=False)] if texts else []


def repo_documents_pandas(pdf: pd.DataFrame, **kw) -> pd.DataFrame:
    """``applyInPandas`` body: one repository's files in, its repository-level documents out (or its error row)."""
    repo = str(pdf["repo"].iloc[0])
    docs, error = isolated("repo_document_error", repo, _repo_documents, pdf, **kw)
    return docs if error is None else _failed("repo_level", repo, error)


def _repo_documents(pdf: pd.DataFrame, *, tokenizer_json: str, seed: int, budget_tokens: int,
                    max_parse_bytes: int) -> pd.DataFrame:
    from spark_jobs.dataset.packing import cached_tokenizer

    repo = str(pdf["repo"].iloc[0])
    paths, languages, contents = list(pdf["path"]), list(pdf["language"]), list(pdf["content"])
    files = [repo_concat.RepoFile(p, lang, c, 0) for p, lang, c in zip(paths, languages, contents, strict=True)]
    counts = _tokens_of(cached_tokenizer(tokenizer_json), [repo_concat.file_piece_text(f) for f in files])
    files = [repo_concat.RepoFile(f.path, f.language, f.content, n + 1) for f, n in zip(files, counts, strict=True)]
    unread: list = []
    graph = dependency_graph({f.path: (f.language, f.content) for f in files}, max_parse_bytes=max_parse_bytes,
                             failures=unread)
    docs = repo_concat.arrange(repo, files, graph, seed=seed, budget_tokens=budget_tokens)
    frame = _frame("repo_level", [f"{repo}#{i}" for i in range(len(docs))],
                   [to_rows(repo_concat.document(d)) for d in docs])
    if unread:  # the documents are made; each file whose imports failed is still reported
        frame = pd.concat([frame, *[_failed("repo_level", f"{repo}:{e.item}", e) for e in unread]],
                          ignore_index=True)
    return frame


def _as_list(value) -> list:
    return [] if value is None else list(value)


def commit_documents_pandas(commits: pd.DataFrame, files: pd.DataFrame, *, bounds: CommitBounds) -> pd.DataFrame:
    """``cogroup().applyInPandas`` body: one repository's commits and curated files in, commit samples out."""
    if commits.empty:
        return _frame("commits", [], [])
    corpus = dict(zip(files["path"], files["content"], strict=True)) if not files.empty else {}
    rows = []
    for record in commits.sort_values("sha").to_dict("records"):
        record["changes"] = [dict(c) for c in _as_list(record.get("changes"))]
        rows.append(record)
    index = RepoIndex(corpus)  # one BM25 index per repository, shared by its commits
    ids, pieces, errors = [], [], []
    for row in rows:  # one commit at a time: a commit that fails is one error row, the others are documents
        doc, error = isolated("commit_document_error", f"{row['repo']}@{row['sha']}", commit_document, row, index,
                              bounds)
        ids.append(f"{row['repo']}@{row['sha']}")
        pieces.append(to_rows(doc) if error is None else [])
        errors.append(None if error is None else f"{error.reason}|{error.detail}")
    return _frame("commits", ids, pieces, errors)


def rendered_text(pieces_col):
    """A Spark column with the document's text pieces joined (what decontamination reads)."""
    from pyspark.sql import functions as F

    return F.concat_ws("\n", F.transform(F.filter(pieces_col, lambda p: ~p["special"]), lambda p: p["text"]))


def documents(spark, files, scores, commits, cfg, tokenizer_json: str, eval_index: bytes | None) -> BuiltDocuments:
    """All documents of the build (``cfg`` is a DatasetBuildConfig); ``files`` are a release's RELEASE_FILES rows.

    Counts (``BuiltDocuments.counts``): ``files_in``, ``commits_in`` and drop reasons ``contaminated_file``,
    ``empty_file``, ``commit_without_changes``, ``contaminated_repo_document``, ``contaminated_commit``;
    ``repo_*`` numbers describe the repository selection. ``eval_index`` (``EvalNgramIndex.to_bytes``) is
    required when ``cfg.decontaminate`` is on.
    """
    from pyspark import StorageLevel
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    from lake.schemas import COMMITS
    from spark_jobs.dataset import decontaminate

    files = files.select("id", "repo", "path", "language", "content", "file_level", "repo_level")
    if cfg.decontaminate:
        # Persisted: the flag is an n-gram scan of every file, read by the three sources and the counts.
        files = decontaminate.flag(files, F.col("content"), eval_index).persist(StorageLevel.MEMORY_AND_DISK)
    else:
        files = files.withColumn("contamination", F.lit(None).cast("string"))
    # An empty file would be a document of eos alone: nothing to learn, and a boundary without content.
    actions = [_aggregate(files, files_in=F.count("*"),
                          contaminated_file=_n_where(F.col("contamination").isNotNull()),
                          empty_file=_n_where(F.col("contamination").isNull() & (F.length("content") == 0)))]
    clean = files.filter(F.col("contamination").isNull() & (F.length("content") > 0)).drop("contamination")
    file_docs = clean.filter("file_level").select(
        F.lit("file_level").alias("source"), F.col("id").alias("doc_id"),
        F.array(F.struct(F.lit(False).alias("special"), F.col("content").alias("text"))).alias("pieces"),
        F.lit(None).cast("string").alias("error"))
    # Repository documents and the commits' BM25 corpus see each repository at its newest version.
    clean = clean.filter("repo_level").select("id", "repo", "path", "language", "content")

    repo_files = clean.groupBy("repo").agg(F.count("*").alias("n_files"),
                                           F.sum(F.length("content")).alias("n_chars"))
    # One repository is one pandas frame on one executor: a giant monorepo stays file-level only.
    eligible = repo_files.filter((F.col("n_files") >= cfg.repo_min_files)
                                 & (F.col("n_chars") <= cfg.repo_max_chars)).select("repo")
    if scores is not None:
        means = (clean.select("id", "repo").join(scores.select("id", "score"), "id")
                 .groupBy("repo").agg(F.avg("score").alias("mean_score"))
                 .join(eligible, "repo"))
        # The best ceil(fraction * n) repositories; ties by name, so the selection is exact and deterministic.
        ranked = (means.withColumn("rank", F.row_number().over(
                      Window.orderBy(F.col("mean_score").desc(), F.col("repo"))))
                  .withColumn("total", F.count("*").over(Window.partitionBy(F.lit(1)))))
        selected = ranked.filter(F.col("rank") <= F.ceil(F.col("total") * F.lit(cfg.repo_keep_fraction))
                                 ).select("repo")
    else:
        selected = eligible
    actions.append(_aggregate(repo_files, repo_repositories=F.count("*"),
                              repo_too_few_files=_n_where(F.col("n_files") < cfg.repo_min_files),
                              repo_too_large=_n_where((F.col("n_files") >= cfg.repo_min_files)
                                                      & (F.col("n_chars") > cfg.repo_max_chars))))
    actions.append(lambda: {"repo_selected": selected.count()})
    # The budget counts every token of the document: its eos (and bos) too, so a document fits its row.
    budget = (cfg.repo_budget_tokens or cfg.seq_len.repo_level) - 1 - int(cfg.add_bos)
    repo_docs = (clean.join(selected, "repo").select("repo", "path", "language", "content")
                 .groupBy("repo").applyInPandas(
                     lambda pdf: repo_documents_pandas(pdf, tokenizer_json=tokenizer_json, seed=cfg.seed,
                                                       budget_tokens=budget, max_parse_bytes=cfg.max_parse_bytes),
                     DOC_SCHEMA))

    docs = file_docs.unionByName(_checked(repo_docs, cfg, eval_index, actions, "contaminated_repo_document"))
    if commits is None:
        actions.append(lambda: {"commits_in": 0})
    else:
        actions.append(_aggregate(commits, commits_in=F.count("*"),
                                  commit_without_changes=_n_where(F.size("changes") == 0)))
        bounds = CommitBounds(cfg.commit_readme_chars, cfg.commit_tree_chars, cfg.commit_file_chars,
                              cfg.commit_top_files)
        commit_docs = (commits.select(*COMMITS.names).filter(F.size("changes") > 0).groupBy("repo")
                       .cogroup(clean.select("repo", "path", "content").groupBy("repo"))
                       .applyInPandas(lambda c, f: commit_documents_pandas(c, f, bounds=bounds), DOC_SCHEMA))
        docs = docs.unionByName(_checked(commit_docs, cfg, eval_index, actions, "contaminated_commit"))
    return BuiltDocuments(docs, actions)


def _n_where(condition):
    from pyspark.sql import functions as F

    return F.sum(F.when(condition, 1).otherwise(0))


def _checked(docs, cfg, eval_index: bytes | None, actions: list, reason: str):
    """Final-document decontamination; the documents are persisted because the count and the packing both read them."""
    from pyspark import StorageLevel
    from pyspark.sql import functions as F

    from spark_jobs.dataset import decontaminate

    if not cfg.decontaminate:
        return docs
    flagged = decontaminate.flag(docs, rendered_text(F.col("pieces")), eval_index).persist(StorageLevel.MEMORY_AND_DISK)
    actions.append(_aggregate(flagged, **{reason: _n_where(F.col("contamination").isNotNull())}))
    return flagged.filter(F.col("contamination").isNull()).drop("contamination")
