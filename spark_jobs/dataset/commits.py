"""Commit training samples: predict a commit's changes from its message and the repository's context.

Input (the report's recipe): the commit message, the README before the commit, the directory tree before
the commit, and the five repository files most related to the message by BM25 (rank-bm25's Okapi BM25, the
message as the query). Target: the changed paths and their changes.

The BM25 corpus is the repository's files in this snapshot's curated input, not the files as they were
before the commit (which the crawl does not keep): an approximation that can rank a file the commit itself
created, and that misses files the curation dropped.

Serialisation (one document; input and target separated by ``<[SEP▁TOKEN]>``)::

    <commit_message>\\n{message}\\n</commit_message>\\n
    <readme>\\n{readme, or empty}\\n</readme>\\n
    <tree>\\n{tree}\\n</tree>\\n
    <file path="{path}">\\n{content}\\n</file>\\n        (up to five, best BM25 score first)
    <[SEP▁TOKEN]>
    <change status="{status}" path="{path}">\\n{diff}\\n</change>\\n    (per changed file, in commit order)

Long README, tree and file texts are cut at configured character bounds, with a ``…[truncated]`` line, so
a sample stays within a long-context window; a change the crawl already truncated keeps its own mark.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from lake.tokens import SEP
from spark_jobs.dataset.documents import Pieces, special, text

TRUNCATED = "\n…[truncated]"
_WORD = re.compile(r"[A-Z]+(?=[A-Z][a-z])|[A-Z]?[a-z]+|[A-Z]+|\d+")


def bm25_terms(value: str) -> list[str]:
    """Lower-cased word pieces, with identifiers split at case changes and underscores.

    >>> bm25_terms("Fix parseHTTPHeader in http_utils.py (#12)")
    ['fix', 'parse', 'http', 'header', 'in', 'http', 'utils', 'py', '12']
    """
    return [w.lower() for w in _WORD.findall(value)]


@dataclass(frozen=True)
class CommitBounds:
    """Character bounds of the sample's parts."""

    readme_chars: int = 8_000
    tree_chars: int = 8_000
    file_chars: int = 16_000
    top_k: int = 5


class RepoIndex:
    """BM25 over one repository's files (path terms count as text: a path is a strong hint)."""

    def __init__(self, files: Mapping[str, str]):
        from rank_bm25 import BM25Okapi

        self.paths = [p for p in sorted(files) if bm25_terms(p + "\n" + files[p])]
        self.files = files
        corpus = [bm25_terms(p + "\n" + files[p]) for p in self.paths]
        self.bm25 = BM25Okapi(corpus) if corpus else None

    def top(self, query: str, k: int) -> list[str]:
        """The ``k`` best paths with a positive score; ties by path, so the result is deterministic."""
        terms = bm25_terms(query)
        if self.bm25 is None or not terms:
            return []
        scores = self.bm25.get_scores(terms)
        ranked = sorted((-float(s), p) for s, p in zip(scores, self.paths, strict=True) if s > 0)
        return [p for _s, p in ranked[:k]]


def _bounded(value: str, limit: int) -> str:
    return value if len(value) <= limit else value[:limit] + TRUNCATED


def _attr(value: str) -> str:
    return value.replace("&", "&amp;").replace('"', "&quot;").replace("\n", " ")


def commit_document(commit: Mapping, index: RepoIndex, bounds: CommitBounds = CommitBounds()) -> Pieces:
    """The sample of one commit (a row of the ``commits`` dataset)."""
    parts = [f"<commit_message>\n{commit['message']}\n</commit_message>\n",
             f"<readme>\n{_bounded(commit.get('readme') or '', bounds.readme_chars)}\n</readme>\n",
             f"<tree>\n{_bounded(commit.get('tree') or '', bounds.tree_chars)}\n</tree>\n"]
    for path in index.top(commit["message"], bounds.top_k):
        parts.append(f'<file path="{_attr(path)}">\n{_bounded(index.files[path], bounds.file_chars)}\n</file>\n')
    target = []
    for change in commit.get("changes") or ():
        diff = change.get("diff") or ""
        if change.get("truncated") and not diff.endswith(TRUNCATED):
            diff += TRUNCATED
        target.append(f'<change status="{_attr(change.get("status") or "M")}" path="{_attr(change["path"])}">\n'
                      f"{diff}\n</change>\n")
    return (text("".join(parts)), special(SEP), text("".join(target)))


def commit_documents(commits: Sequence[Mapping], files: Mapping[str, str],
                     bounds: CommitBounds = CommitBounds()) -> list[Pieces]:
    """Samples of one repository's commits, sharing one BM25 index."""
    index = RepoIndex(files)
    return [commit_document(c, index, bounds) for c in commits]
