"""A small local crawl source of real code for stage-process tests: two overlapping "repositories" of stdlib
packages (json in both), and a local-profile config pointing a throw-away lake at it."""

import json
import os
import shutil
import sys
import sysconfig
from pathlib import Path

import pyarrow as pa


def two_repo_source(base: Path) -> Path:
    """Write the source under ``base/source`` and the config at ``base/local.yaml`` (lake ``base/lake``)."""
    stdlib = Path(sysconfig.get_paths()["stdlib"])
    source = base / "source"
    for repo, names in {"one": ["json", "email"], "two": ["json", "html"]}.items():
        for name in names:
            shutil.copytree(stdlib / name, source / repo / name, ignore=shutil.ignore_patterns("__pycache__"))
    cfg = base / "local.yaml"
    cfg.write_text(json.dumps({"profile": "local", "lake": {"root": str(base / "lake")},
                               "spark": {"master": "local[2]", "driver_memory": "1g", "shuffle_partitions": 4},
                               "stages": {"crawl": {"local_root": str(source)}}}))
    return cfg


def stage_env() -> dict[str, str]:
    """The environment a stage process gets from the local operator: this Python for the driver and its workers."""
    return dict(os.environ, PYSPARK_PYTHON=sys.executable, PYSPARK_DRIVER_PYTHON=sys.executable)


def records(lake, stage: str, snapshot: str = "s") -> bytes:
    """A committed stage's files, sorted by id, as Arrow IPC bytes: equal bytes mean identical records."""
    table = lake.read_table(snapshot, stage, "files").sort_by("id")
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)
    return sink.getvalue().to_pybytes()
