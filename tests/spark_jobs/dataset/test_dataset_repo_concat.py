"""Repository-level concatenation: dependency order, cycles, random-order languages, budget splits."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from lake.tokens import SEP
from spark_jobs.dataset.imports import dependency_graph
from spark_jobs.dataset.repo_concat import (
    RepoFile,
    arrange,
    dependency_order,
    document,
    split_document,
    strongly_connected,
)


def repo_files(spec: dict[str, tuple[str, str]], tokens: int = 10) -> list[RepoFile]:
    return [RepoFile(p, lang, content, tokens) for p, (lang, content) in sorted(spec.items())]


SPEC = {
    "app/main.py": ("Python", "from app import service\nimport app.db\n"),
    "app/service.py": ("Python", "from app.models import User\n"),
    "app/models.py": ("Python", "from app.db import Base\n"),
    "app/db.py": ("Python", "import sqlite3\n"),
    "app/__init__.py": ("Python", ""),
    "README.md": ("Markdown", "# app\n"),
    "schema.sql": ("SQL", "create table t (x int);\n"),
    "deploy.sh": ("Shell", "echo hi\n"),
    "static/index.html": ("HTML", "<p>hi</p>\n"),
}


def graph_of(files):
    return dependency_graph({f.path: (f.language, f.content) for f in files})


def test_files_follow_their_imports():
    files = repo_files(SPEC)
    [doc] = arrange("acme/app", files, graph_of(files), seed=0, budget_tokens=10_000)
    paths = [f.path for f in doc]
    pos = {p: i for i, p in enumerate(paths)}
    assert pos["app/db.py"] < pos["app/models.py"] < pos["app/service.py"] < pos["app/main.py"]
    assert set(paths[-3:]) == {"schema.sql", "deploy.sh", "static/index.html"}
    assert sorted(paths) == sorted(SPEC)


def test_random_order_languages_are_shuffled_by_seed_and_repo():
    many = {f"sql/{i:02d}.sql": ("SQL", "select 1;\n") for i in range(12)}
    files = repo_files(many)
    orders = {tuple(f.path for f in arrange("r", files, {}, seed=s, budget_tokens=10**6)[0]) for s in range(5)}
    assert len(orders) > 1
    again = arrange("r", files, {}, seed=3, budget_tokens=10**6)[0]
    assert [f.path for f in again] == [f.path for f in arrange("r", files, {}, seed=3, budget_tokens=10**6)[0]]


def test_cycles_stay_together_in_path_order():
    graph = {"c.py": {"b.py"}, "b.py": {"a.py"}, "a.py": {"c.py"}, "d.py": {"a.py"}, "e.py": set()}
    assert strongly_connected(graph)[0] == ["a.py", "b.py", "c.py"]
    assert dependency_order(graph) == ["a.py", "b.py", "c.py", "d.py", "e.py"]


@given(st.dictionaries(st.sampled_from("abcdefghij"), st.sets(st.sampled_from("abcdefghij")), min_size=1))
@settings(max_examples=200, deadline=None)
def test_dependency_order_respects_every_acyclic_edge(raw):
    graph = {k: {d for d in v if d in raw} for k, v in raw.items()}
    order = dependency_order(graph)
    assert sorted(order) == sorted(graph)
    comp = {n: i for i, c in enumerate(strongly_connected(graph)) for n in c}
    pos = {n: i for i, n in enumerate(order)}
    for node, deps in graph.items():
        for dep in deps:
            if comp[dep] != comp[node]:
                assert pos[dep] < pos[node]


def test_big_repositories_split_into_independent_subgraphs():
    spec = {
        "a/x.py": ("Python", "import a.y\n"), "a/y.py": ("Python", ""),
        "b/x.py": ("Python", "import b.y\n"), "b/y.py": ("Python", ""),
        "c.sql": ("SQL", "select 1;\n"),
    }
    files = repo_files(spec, tokens=10)
    docs = arrange("r", files, graph_of(files), seed=0, budget_tokens=25)
    assert [[f.path for f in d] for d in docs] == [["a/y.py", "a/x.py"], ["b/y.py", "b/x.py"], ["c.sql"]]
    whole = arrange("r", files, graph_of(files), seed=0, budget_tokens=50)
    assert len(whole) == 1


def test_an_oversized_component_is_cut_in_topological_runs():
    spec = {f"m{i}.py": ("Python", f"import m{i - 1}\n" if i else "") for i in range(5)}
    files = repo_files(spec, tokens=10)
    docs = arrange("r", files, graph_of(files), seed=0, budget_tokens=20)
    assert [[f.path for f in d] for d in docs] == [["m0.py", "m1.py"], ["m2.py", "m3.py"], ["m4.py"]]


def test_document_format_round_trips():
    files = repo_files({"b.py": ("Python", "x = 1\n"), "a/c.py": ("Python", "<[SEP▁TOKEN]> in text\n")})
    pieces = document(files)
    assert pieces[0] == (True, SEP) and pieces[1] == (False, "a/c.py\n<[SEP▁TOKEN]> in text\n")
    assert split_document(pieces) == [(f.path, f.content) for f in files]
