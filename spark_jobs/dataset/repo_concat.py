"""Repository-level documents for long-context training: one repository, one string, in dependency order.

Rules (the report fixes the first two; the others are our stated choices):

1. Files of the mainstream languages are joined in topological order of the import graph
   (:mod:`spark_jobs.dataset.imports`): a file comes after the files it imports.
2. HTML, SQL and Shell files are joined in random order, seeded by ``(seed, repo)``, after the ordered part.
3. Cycles: the import graph is condensed into strongly connected components; a cycle's files are emitted
   together, in path order, where the component falls in the topological order. Among files whose
   dependencies are all placed, the smallest path goes first, so the order is unique.
4. Files of languages without an import resolver are graph nodes without edges, so they sort by path.
5. Each file is introduced by ``<[SEP▁TOKEN]>`` followed by its path and a newline, then its content::

       <[SEP▁TOKEN]>src/util.py\\n<content of util.py><[SEP▁TOKEN]>src/main.py\\n<content of main.py>

6. A repository over ``budget_tokens`` is split into independent dependency subgraphs (weakly connected
   components, each in its topological order, the random-order files each on their own), packed greedily in
   order into documents of at most ``budget_tokens``; a component that alone exceeds the budget is cut into
   consecutive runs of its topological order (a run's imports then sit in an earlier document).
"""

from __future__ import annotations

import heapq
import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from lake.tokens import SEP
from spark_jobs.dataset.documents import Pieces, special, text

RANDOM_ORDER_LANGUAGES = frozenset({"HTML", "SQL", "Shell"})


@dataclass(frozen=True)
class RepoFile:
    path: str
    language: str
    content: str
    tokens: int  # token count of the file's piece (path line + content), for the context budget


def strongly_connected(graph: Mapping[str, set[str]]) -> list[list[str]]:
    """Tarjan's components (iterative, so deep import chains cannot overflow the stack), members sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    on_stack: set[str] = set()
    stack: list[str] = []
    out: list[list[str]] = []
    counter = 0
    for root in sorted(graph):
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            advanced = False
            for child in children:
                if child not in graph:
                    continue
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph[child]))))
                    advanced = True
                    break
                if child in on_stack:
                    low[node] = min(low[node], index[child])
            if advanced:
                continue
            work.pop()
            if work:
                parent = work[-1][0]
                low[parent] = min(low[parent], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                out.append(sorted(component))
    return out


def dependency_order(graph: Mapping[str, set[str]]) -> list[str]:
    """Every node after the nodes it depends on (rules 1, 3 and 4).

    >>> dependency_order({"main.py": {"util.py"}, "util.py": set(), "a.py": {"b.py"}, "b.py": {"a.py"}})
    ['a.py', 'b.py', 'util.py', 'main.py']
    """
    components = strongly_connected(graph)
    comp_of = {node: i for i, comp in enumerate(components) for node in comp}
    depends: dict[int, set[int]] = {i: set() for i in range(len(components))}
    users: dict[int, set[int]] = {i: set() for i in range(len(components))}
    for node, deps in graph.items():
        for dep in deps:
            if dep in comp_of and comp_of[dep] != comp_of[node]:
                depends[comp_of[node]].add(comp_of[dep])
                users[comp_of[dep]].add(comp_of[node])
    waiting = {i: len(d) for i, d in depends.items()}
    ready = [(components[i][0], i) for i, n in waiting.items() if n == 0]
    heapq.heapify(ready)
    order: list[str] = []
    while ready:
        _, i = heapq.heappop(ready)
        order.extend(components[i])
        for user in users[i]:
            waiting[user] -= 1
            if waiting[user] == 0:
                heapq.heappush(ready, (components[user][0], user))
    return order


def weak_components(graph: Mapping[str, set[str]], order: Sequence[str]) -> list[list[str]]:
    """Weakly connected components, each in ``order``, listed by their first member's position."""
    neighbours: dict[str, set[str]] = {node: set() for node in graph}
    for node, deps in graph.items():
        for dep in deps:
            if dep in neighbours:
                neighbours[node].add(dep)
                neighbours[dep].add(node)
    label: dict[str, int] = {}
    components = 0
    for node in order:
        if node in label:
            continue
        label[node] = node_label = components
        components += 1
        frontier = [node]
        while frontier:
            for other in neighbours[frontier.pop()]:
                if other not in label:
                    label[other] = node_label
                    frontier.append(other)
    groups: dict[int, list[str]] = {}
    for node in order:
        groups.setdefault(label[node], []).append(node)
    return [groups[k] for k in sorted(groups)]


def arrange(repo: str, files: Sequence[RepoFile], graph: Mapping[str, set[str]], *, seed: int,
            budget_tokens: int) -> list[list[RepoFile]]:
    """The files of each repository-level document, in order (rules 1-6)."""
    by_path = {f.path: f for f in files}
    ordered_paths = sorted(p for p, f in by_path.items() if f.language not in RANDOM_ORDER_LANGUAGES)
    shuffled = sorted(p for p, f in by_path.items() if f.language in RANDOM_ORDER_LANGUAGES)
    random.Random(f"repo:{seed}:{repo}").shuffle(shuffled)
    sub_graph = {p: {d for d in graph.get(p, set()) if d in by_path and d not in shuffled} for p in ordered_paths}
    order = dependency_order(sub_graph)
    if sum(f.tokens for f in files) <= budget_tokens:
        return [[by_path[p] for p in order + shuffled]]
    groups = weak_components(sub_graph, order) + [[p] for p in shuffled]
    docs: list[list[RepoFile]] = []
    current: list[RepoFile] = []
    used = 0
    for group in groups:
        size = sum(by_path[p].tokens for p in group)
        if current and used + size > budget_tokens:
            docs.append(current)
            current, used = [], 0
        for path in group:
            file = by_path[path]
            if current and used + file.tokens > budget_tokens:
                docs.append(current)
                current, used = [], 0
            current.append(file)
            used += file.tokens
    if current:
        docs.append(current)
    return docs


def file_piece_text(file: RepoFile) -> str:
    return f"{file.path}\n{file.content}"


def document(files: Sequence[RepoFile]) -> Pieces:
    """Rule 5: each file as ``<[SEP▁TOKEN]>path\\ncontent``."""
    pieces = []
    for file in files:
        pieces += [special(SEP), text(file_piece_text(file))]
    return tuple(pieces)


def split_document(pieces: Pieces) -> list[tuple[str, str]]:
    """``(path, content)`` of each file of a repository document (the inverse of :func:`document`)."""
    out = []
    for is_special, value in pieces:
        if is_special:
            if value != SEP:
                raise ValueError(f"unexpected special token {value} in a repository document")
            out.append(["", ""])
        elif not out:
            raise ValueError("a repository document must start with a file separator")
        else:
            out[-1][1] += value
    result = []
    for _, body in out:
        path, newline, content = body.partition("\n")
        if not newline:
            raise ValueError(f"file header without a newline: {body[:80]!r}")
        result.append((path, content))
    return result
