"""Commit samples: BM25 picks the related files; the serialisation holds input and target."""

from __future__ import annotations

from lake.tokens import SEP
from spark_jobs.dataset.commits import TRUNCATED, CommitBounds, RepoIndex, commit_documents
from spark_jobs.dataset.documents import render

FILES = {
    "src/http/parser.py": "def parse_header(line):\n    name, value = line.split(':', 1)\n    return name, value\n",
    "src/http/client.py": "from .parser import parse_header\nclass Client:\n    def get(self, url): ...\n",
    "src/db/pool.py": "class ConnectionPool:\n    def acquire(self): ...\n",
    "docs/index.md": "# Project\n",
    "empty.txt": "",
}
COMMIT = {
    "repo": "acme/web", "sha": "b" * 40, "parent_sha": "a" * 40, "author_date": None,
    "message": "Fix header parsing when the value contains a colon",
    "readme": "# web\nA tiny HTTP stack.\n", "tree": "src/\nsrc/http/\nsrc/http/parser.py\n",
    "changes": [{"path": "src/http/parser.py", "status": "M", "diff": "-a\n+b\n", "truncated": False},
                {"path": "src/big.py", "status": "A", "diff": "+x\n", "truncated": True}],
}


def test_bm25_ranks_the_parser_first_and_skips_unrelated_files():
    index = RepoIndex(FILES)
    top = index.top(COMMIT["message"], 5)
    assert top[0] == "src/http/parser.py"
    assert "src/db/pool.py" not in top and "empty.txt" not in top


def test_sample_serialisation():
    [doc] = commit_documents([COMMIT], FILES)
    assert [p[0] for p in doc] == [False, True, False] and doc[1] == (True, SEP)
    source, target = doc[0][1], doc[2][1]
    assert source.startswith("<commit_message>\nFix header parsing")
    assert "<readme>\n# web\nA tiny HTTP stack.\n\n</readme>" in source
    assert '<file path="src/http/parser.py">\ndef parse_header' in source
    assert source.index("<tree>") < source.index("<file ")
    assert target == ('<change status="M" path="src/http/parser.py">\n-a\n+b\n\n</change>\n'
                      f'<change status="A" path="src/big.py">\n+x\n{TRUNCATED}\n</change>\n')


def test_bounds_cut_long_parts_and_limit_the_files():
    commit = {**COMMIT, "readme": "r" * 100, "tree": None}
    [doc] = commit_documents([commit], FILES, CommitBounds(readme_chars=10, file_chars=5, top_k=1))
    body = render(doc)
    assert "r" * 10 + TRUNCATED in body and "r" * 11 not in body
    assert body.count("<file path=") == 1 and "<tree>\n\n</tree>" in body


def test_no_files_or_empty_query_means_no_related_files():
    assert RepoIndex({}).top("anything", 5) == []
    assert RepoIndex(FILES).top("!!!", 5) == []
    [doc] = commit_documents([{**COMMIT, "readme": None, "changes": []}], {})
    assert "<file" not in render(doc) and doc[2] == (False, "")
