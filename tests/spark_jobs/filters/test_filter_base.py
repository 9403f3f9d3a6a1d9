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


def test_hostile_documents_get_verdicts_not_crashes():
    """NUL bytes, control characters, a 2 MB single line, RTL/emoji text: every step returns a verdict."""
    from lake.ngrams import EvalNgramIndex
    from spark_jobs.filters.decontaminate import DecontaminationFilter
    from spark_jobs.filters.pii import PiiRedactor
    from spark_jobs.filters.rules import RuleFilter
    from spark_jobs.filters.syntax_filter import SyntaxFilter

    hostile = [record("nul.py", "\x00" * 1000), record("ctl.js", "\x1b[31m\x07" * 200),
               record("huge.py", "x = '" + "a" * 2_000_000 + "'\n"), record("rtl.py", "# \u202e" + "😀" * 500 + "\n"),
               record("crlf.c", "int x;\r\n" * 100), record("empty.md", "")]
    steps = [SyntaxFilter(), RuleFilter(), DecontaminationFilter(EvalNgramIndex.from_texts({"s": ["a b c"]}, n=3)),
             PiiRedactor()]
    for step in steps:
        out = apply_batch(step, batch(hostile), "s").to_pylist()
        assert len(out) == len(hostile)
        assert not any((r["reason"] or "").endswith("_error") and r["reason"] != "syntax_error" for r in out), out
    verdicts = {r["path"]: r["reason"] for r in apply_batch(SyntaxFilter(), batch(hostile), "s").to_pylist()}
    assert verdicts["huge.py"] == "syntax_too_large" and verdicts["crlf.c"] is None
