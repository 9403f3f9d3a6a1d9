"""Import extraction with tree-sitter, and a repository's file dependency graph built from it.

For each supported language a tree-sitter query finds the import statements; a resolver maps each import to
files *of the same repository* (imports of the standard library or third-party packages resolve to nothing
and add no edge). Resolution rules, per language:

- Python: ``import a.b`` and ``from a.b import c`` -> ``a/b/c.py``, ``a/b/c/__init__.py``, ``a/b.py``,
  ``a/b/__init__.py`` (deepest first); relative imports start from the importing file's package. Absolute
  module paths match at any directory depth (``src/`` layouts).
- Java: ``import a.b.C`` -> ``a/b/C.java``; ``import a.b.*`` -> every ``.java`` file of ``a/b/``;
  static imports fall back to the class file.
- JavaScript / TypeScript / TSX: relative specifiers of ``import``, ``export ... from``, ``require()`` and
  ``import()`` -> the path itself, with the usual extensions, or its ``index`` file.
- Go: an import path names a package directory -> every non-test ``.go`` file of the repository directory
  whose path is the longest suffix of the import path.
- C / C++: ``#include "x.h"`` -> relative to the including file, else any repository file ending in ``/x.h``;
  ``<...>`` includes are system headers.
- Rust: ``mod foo;`` -> ``foo.rs`` or ``foo/mod.rs`` beside the module; ``use crate::a::b`` / ``super::`` /
  ``self::`` -> the longest module path that exists as ``.rs`` or ``mod.rs``.

Files larger than ``max_parse_bytes`` are not parsed (they get no outgoing edges).
"""

from __future__ import annotations

import posixpath
import re
from collections import defaultdict
from collections.abc import Iterable, Mapping
from functools import cache

from lake.faults import isolated

GRAMMARS = {"Python": "python", "Java": "java", "JavaScript": "javascript", "TypeScript": "typescript",
            "TSX": "tsx", "Go": "go", "C": "c", "C++": "cpp", "CUDA": "cpp", "Rust": "rust"}

_JS = """
(import_statement source: (string (string_fragment) @spec))
(export_statement source: (string (string_fragment) @spec))
((call_expression function: (identifier) @fn arguments: (arguments . (string (string_fragment) @spec)))
 (#eq? @fn "require"))
(call_expression function: (import) arguments: (arguments . (string (string_fragment) @spec)))
"""
QUERIES = {
    "python": """
(import_statement name: (dotted_name) @module)
(import_statement name: (aliased_import name: (dotted_name) @module))
(import_from_statement) @from
""",
    "java": "(import_declaration) @import",
    "javascript": _JS,
    "typescript": _JS,
    "tsx": _JS,
    "go": "(import_spec path: (interpreted_string_literal (interpreted_string_literal_content) @spec))",
    "c": "(preproc_include path: (string_literal (string_content) @spec))",
    "cpp": "(preproc_include path: (string_literal (string_content) @spec))",
    "rust": """
(mod_item name: (identifier) @mod !body)
(use_declaration argument: (_) @use)
""",
}
JS_EXTENSIONS = ("", ".ts", ".tsx", ".js", ".jsx", ".mjs", ".cjs", ".d.ts", ".vue", ".svelte")
DEFAULT_MAX_PARSE_BYTES = 512_000


@cache
def _query(grammar: str):
    from tree_sitter import Query
    from tree_sitter_language_pack import get_language

    return Query(get_language(grammar), QUERIES[grammar])


@cache
def _parser(grammar: str):
    from tree_sitter_language_pack import get_parser

    return get_parser(grammar)


def _captures(grammar: str, content: str) -> dict[str, list]:
    from tree_sitter import QueryCursor

    tree = _parser(grammar).parse(content.encode("utf-8", "surrogatepass"))
    return QueryCursor(_query(grammar)).captures(tree.root_node)


def _text(node) -> str:
    return node.text.decode("utf-8", "replace")


class RepoPaths:
    """The files of one repository, indexed for the suffix look-ups the resolvers need."""

    def __init__(self, paths: Iterable[str]):
        self.paths = frozenset(paths)
        self.by_dir: dict[str, list[str]] = defaultdict(list)
        self.by_name: dict[str, list[str]] = defaultdict(list)
        for path in sorted(self.paths):
            self.by_dir[posixpath.dirname(path)].append(path)
            self.by_name[posixpath.basename(path)].append(path)

    def ending_with(self, suffix: str) -> list[str]:
        """Files equal to ``suffix`` or ending in ``/suffix``, shallowest first."""
        hits = [p for p in self.by_name.get(posixpath.basename(suffix), ()) if p == suffix or p.endswith("/" + suffix)]
        return sorted(hits, key=lambda p: (p.count("/"), p))

    def first_existing(self, candidates: Iterable[str], *, anywhere: bool = False) -> list[str]:
        for candidate in candidates:
            candidate = posixpath.normpath(candidate)
            if candidate.startswith("../"):
                continue
            if candidate in self.paths:
                return [candidate]
            if anywhere:
                hits = self.ending_with(candidate)
                if hits:
                    return hits[:1]
        return []


def _python(path: str, caps, repo: RepoPaths) -> set[str]:
    out: set[str] = set()

    def module_files(parts: list[str], base: str | None) -> list[str]:
        candidates = []
        for depth in range(len(parts), 0, -1):
            stem = "/".join(parts[:depth])
            candidates += [f"{stem}.py", f"{stem}/__init__.py"]
        if base is None:
            return repo.first_existing(candidates, anywhere=True)
        if not parts:
            return repo.first_existing([posixpath.join(base, "__init__.py")])
        return repo.first_existing(posixpath.join(base, c) for c in candidates)

    for node in caps.get("module", []):
        out.update(module_files(_text(node).split("."), None))
    for node in caps.get("from", []):
        module = node.child_by_field_name("module_name")
        if module is None:
            continue
        names = [_text(n.child_by_field_name("name") if n.type == "aliased_import" else n)
                 for n in node.children_by_field_name("name")]
        base = None
        if module.type == "relative_import":
            dots = sum(len(_text(c)) for c in module.children if c.type == "import_prefix")
            dotted = [c for c in module.children if c.type == "dotted_name"]
            parts = _text(dotted[0]).split(".") if dotted else []
            base = posixpath.dirname(path)
            for _ in range(dots - 1):
                base = posixpath.dirname(base)
        else:
            parts = _text(module).split(".")
        for name in names:  # a submodule named `n` of X, else X itself (n is a name defined in X)
            hits = module_files([*parts, name], base) if name != "*" else []
            if hits and hits[0].endswith((f"/{name}.py", f"{name}/__init__.py", f"{name}.py")):
                out.update(hits)
            else:
                out.update(module_files(parts, base))
    return out


def _java(path: str, caps, repo: RepoPaths) -> set[str]:
    out: set[str] = set()
    for node in caps.get("import", []):
        spec = re.sub(r"\s+", "", _text(node)).removeprefix("import").removeprefix("static").rstrip(";")
        parts = spec.split(".")
        if parts[-1] == "*":
            pkg = "/".join(parts[:-1])
            out.update(p for d, files in repo.by_dir.items() if d == pkg or d.endswith("/" + pkg)
                       for p in files if p.endswith(".java"))
            continue
        candidates = ["/".join(parts[:depth]) + ".java" for depth in range(len(parts), 1, -1)]
        out.update(repo.first_existing(candidates, anywhere=True))
    return out


def _javascript(path: str, caps, repo: RepoPaths) -> set[str]:
    out: set[str] = set()
    here = posixpath.dirname(path)
    for node in caps.get("spec", []):
        spec = _text(node)
        if not spec.startswith("."):
            continue
        target = posixpath.join(here, spec)
        candidates = [target + ext for ext in JS_EXTENSIONS]
        candidates += [posixpath.join(target, "index" + ext) for ext in JS_EXTENSIONS[1:]]
        out.update(repo.first_existing(candidates))
    return out


def _go(path: str, caps, repo: RepoPaths) -> set[str]:
    out: set[str] = set()
    go_dirs = [d for d, files in repo.by_dir.items() if any(f.endswith(".go") for f in files)]
    for node in caps.get("spec", []):
        spec = _text(node)
        matches = [d for d in go_dirs if d and (spec == d or spec.endswith("/" + d))]
        if not matches:
            continue
        best = max(matches, key=len)
        out.update(p for p in repo.by_dir[best] if p.endswith(".go") and not p.endswith("_test.go"))
    return out


def _c(path: str, caps, repo: RepoPaths) -> set[str]:
    out: set[str] = set()
    here = posixpath.dirname(path)
    for node in caps.get("spec", []):
        spec = _text(node)
        out.update(repo.first_existing([posixpath.join(here, spec)]) or repo.first_existing([spec], anywhere=True))
    return out


def expand_use(tree: str) -> list[list[str]]:
    """Paths of a Rust use tree.

    >>> expand_use("crate::a::{b, c::{d, e}, self}")
    [['crate', 'a', 'b'], ['crate', 'a', 'c', 'd'], ['crate', 'a', 'c', 'e'], ['crate', 'a']]
    """
    tree = re.sub(r"\s+", "", re.sub(r"\s+as\s+\w+", "", tree))
    if "{" not in tree:
        return [[p for p in tree.split("::") if p and p != "*"]]
    head, _, rest = tree.partition("{")
    inner = rest[: rest.rindex("}")]
    prefix = [p for p in head.split("::") if p]
    items, depth, start = [], 0, 0
    for i, char in enumerate(inner):
        depth += char == "{"
        depth -= char == "}"
        if char == "," and depth == 0:
            items.append(inner[start:i])
            start = i + 1
    items.append(inner[start:])
    out = []
    for item in filter(None, items):
        for sub in expand_use(item):
            out.append(prefix if sub == ["self"] else prefix + sub)
    return out


def _rust_module_dir(path: str) -> str:
    """The directory holding the submodules of the module defined by ``path``."""
    name = posixpath.basename(path)
    if name in ("mod.rs", "lib.rs", "main.rs"):
        return posixpath.dirname(path)
    return posixpath.splitext(path)[0]


def _rust_crate_root(path: str) -> str:
    parts = path.split("/")
    if "src" in parts:
        return "/".join(parts[: len(parts) - parts[::-1].index("src")])
    return posixpath.dirname(path)


def _rust(path: str, caps, repo: RepoPaths) -> set[str]:
    out: set[str] = set()
    module_dir = _rust_module_dir(path)
    for node in caps.get("mod", []):
        name = _text(node)
        out.update(repo.first_existing([f"{module_dir}/{name}.rs", f"{module_dir}/{name}/mod.rs"]))
    for node in caps.get("use", []):
        for parts in expand_use(_text(node)):
            if not parts:
                continue
            if parts[0] == "crate":
                base, parts = _rust_crate_root(path), parts[1:]
            elif parts[0] == "super":
                base = posixpath.dirname(module_dir)
                parts = parts[1:]
                while parts and parts[0] == "super":
                    base, parts = posixpath.dirname(base), parts[1:]
            elif parts[0] == "self":
                base, parts = module_dir, parts[1:]
            else:
                continue
            candidates = []
            for depth in range(len(parts), 0, -1):
                stem = posixpath.join(base, *parts[:depth])
                candidates += [f"{stem}.rs", f"{stem}/mod.rs"]
            out.update(repo.first_existing(candidates))
    return out


RESOLVERS = {"python": _python, "java": _java, "javascript": _javascript, "typescript": _javascript,
             "tsx": _javascript, "go": _go, "c": _c, "cpp": _c, "rust": _rust}


def dependencies(path: str, language: str, content: str, repo: RepoPaths, *,
                 max_parse_bytes: int = DEFAULT_MAX_PARSE_BYTES) -> set[str]:
    """The repository files that ``path`` imports (never itself)."""
    grammar = GRAMMARS.get(language)
    if grammar is None or len(content) > max_parse_bytes:
        return set()
    return RESOLVERS[grammar](path, _captures(grammar, content), repo) - {path}


def dependency_graph(files: Mapping[str, tuple[str, str]], *, max_parse_bytes: int = DEFAULT_MAX_PARSE_BYTES,
                     failures: list | None = None) -> dict[str, set[str]]:
    """``{path: paths it depends on}`` for ``files = {path: (language, content)}``.

    A file whose imports cannot be read (its parse raises) depends on nothing and stays in the graph; the
    :class:`lake.faults.ItemError` is appended to ``failures``."""
    repo = RepoPaths(files)
    graph = {}
    for path, (language, content) in files.items():
        deps, error = isolated("imports_error", path, dependencies, path, language, content, repo,
                               max_parse_bytes=max_parse_bytes)
        graph[path] = deps or set()
        if error is not None and failures is not None:
            failures.append(error)
    return graph
