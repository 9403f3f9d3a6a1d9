"""Code lives where it runs: the GPU image carries lake/ and training/, the Spark image lake/ and spark_jobs/.

So nothing in training/ may import spark_jobs/ (or the reverse); what both need is a data contract in lake/, which
imports neither. Read from the source with ``ast``, imports inside functions included.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
FORBIDDEN = {"training": {"spark_jobs"}, "spark_jobs": {"training"}, "lake": {"spark_jobs", "training"}}


def imported_packages(path: Path) -> set[tuple[int, str]]:
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            found |= {(node.lineno, alias.name.split(".")[0]) for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.add((node.lineno, node.module.split(".")[0]))
    return found


@pytest.mark.parametrize("package", sorted(FORBIDDEN))
def test_a_runtime_package_imports_no_other_runtime(package):
    crossings = [f"{path.relative_to(REPO)}:{line} imports {name}"
                 for path in sorted((REPO / package).rglob("*.py"))
                 for line, name in sorted(imported_packages(path)) if name in FORBIDDEN[package]]
    assert not crossings, "\n".join(crossings)
