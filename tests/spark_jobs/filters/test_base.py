"""The step/batch contract: verdict forms, rewrites, a failing step, column checks."""

import pyarrow as pa
import pytest
from filter_records import record

from lake.schemas import FILES, sha256_hex
from spark_jobs.filters.base import BaseFilter, PipelineStep, Verdict, apply_batch, conform, split_outcomes


class ByPath(BaseFilter):
    name = "by_path"

    def filter(self, doc):
        if doc["path"].startswith("bool"):
            return False
        if doc["path"].startswith("pair"):
            return False, "pair_reason"
        if doc["path"].startswith("boom"):
            raise RuntimeError("exploded on purpose")
        self.count("seen")
        return True


class Upper(PipelineStep):
    name = "upper"

    def process(self, doc):
        return Verdict(True, content=doc["content"].upper())


def batch(rows):
    return pa.RecordBatch.from_pylist(rows, schema=FILES)


def test_verdict_forms_and_errors_become_reasons():
    rows = [record("bool.py", "x"), record("pair.py", "x"), record("boom.py", "x"), record("ok.py", "x")]
    out = apply_batch(ByPath(), batch(rows), "stage_x").to_pylist()
    assert [(r["path"], r["reason"]) for r in out] == [
        ("bool.py", "by_path"), ("pair.py", "pair_reason"), ("boom.py", "by_path_error"), ("ok.py", None)]
    assert "exploded on purpose" in out[2]["detail"]
    assert out[3]["metrics"] == [("seen", 1)] and out[0]["metrics"] == []
    assert {r["stage"] for r in out} == {"stage_x"}


def test_rewrite_updates_hash_size_and_lines():
    row = record("a.py", "héllo\nworld\n")
    out = apply_batch(Upper(), batch([row]), "s").to_pylist()[0]
    assert out["content"] == "HÉLLO\nWORLD\n"
    assert out["sha256"] == sha256_hex("HÉLLO\nWORLD\n".encode()) and out["size_bytes"] == 13
    assert out["num_lines"] == row["num_lines"] and out["id"] == row["id"]


def test_split_outcomes_schemas():
    rows = [record("bool.py", "x"), record("ok.py", "y")]
    table = pa.Table.from_batches([apply_batch(ByPath(), batch(rows), "s")])
    kept, quarantine = split_outcomes(table)
    assert kept.schema.names == FILES.names and kept.column("path").to_pylist() == ["ok.py"]
    assert quarantine.column("reason").to_pylist() == ["by_path"]


def test_conform_names_missing_columns():
    bad = pa.RecordBatch.from_pylist([{"id": "1", "path": "a.py"}])
    with pytest.raises(ValueError, match="lack FILES columns.*repo"):
        conform(bad)
