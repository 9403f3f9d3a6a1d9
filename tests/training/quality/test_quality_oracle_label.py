"""Stage oracle_label: sample + rate + write labels/failures; drop reasons; resume after a crash."""

from __future__ import annotations

import pytest

from lake.stage import Partition
from tests.training.quality.conftest import SNAPSHOT, VERSION
from training.quality import oracle_label
from training.quality.config import OracleLabelConfig
from training.quality.prompt import PROMPT_VERSION

V1 = Partition.scorer(VERSION)


class ScriptedOracle:
    """A stand-in LLM whose answers depend on the file, with a crash switch to simulate a killed run."""

    name = "scripted:test"
    is_llm = True

    def __init__(self, crash_after: int | None = None):
        self.crash_after = crash_after
        self.rated = 0

    def answer(self, requests):
        if self.crash_after is not None and self.rated >= self.crash_after:
            raise KeyboardInterrupt("simulated kill")
        self.rated += len(requests)
        out = []
        for r in requests:
            if r.language == "JSON":
                out.append("This is configuration.")                     # unparseable
            elif r.language == "C":
                out.append(f"Fine.\nRating: [[{len(r.content) % 9 + 1}]]")
            elif "Generated" in r.content:
                out.append(None)                                          # request failed for good
            else:
                out.append("Rating: [[11]]" if len(r.content) % 7 == 0 else "Clean.\nRating: [[7]]")
        return out


def test_rule_teacher_labels_every_sampled_file(input_lake, corpus):
    cfg = OracleLabelConfig(sample_size=40, shard_size=16)
    stats = oracle_label.run(input_lake, VERSION, SNAPSHOT, cfg)
    labels = input_lake.read_table(V1, "oracle_label", "labels")
    assert stats["records_in"] == 40 and stats["records_out"] == labels.num_rows == 40
    assert set(labels.column("oracle").to_pylist()) == {"rules:rules-v1"}
    assert set(labels.column("prompt_version").to_pylist()) == {PROMPT_VERSION}
    assert stats["metrics"]["oracle_is_llm"] is False
    assert sum(stats["metrics"]["quotas"].values()) == 40
    by_lang = {}
    for lang, label in zip(labels.column("language").to_pylist(), labels.column("label").to_pylist(), strict=True):
        by_lang.setdefault(lang, []).append(label)
    assert set(by_lang["JSON"]) == {0.0}                   # the zero-score policy for data files
    assert max(by_lang["Python"]) >= 7


def test_unusable_answers_are_counted_and_left_unlabelled(input_lake):
    stats = oracle_label.run(input_lake, VERSION, SNAPSHOT, OracleLabelConfig(sample_size=60, shard_size=25),
                             oracle=ScriptedOracle())
    labels = input_lake.read_table(V1, "oracle_label", "labels")
    failures = input_lake.read_table(V1, "oracle_label", "failures")
    reasons = stats["drop_reasons"]
    assert reasons["unparseable_answer"] == sum(1 for x in failures.column("language").to_pylist() if x == "JSON")
    assert "oracle_request_failed" in reasons and "rating_out_of_range" in reasons
    assert labels.num_rows + failures.num_rows == 60 == stats["records_in"]
    assert set(labels.column("id").to_pylist()).isdisjoint(failures.column("id").to_pylist())
    assert all(0 <= v <= 10 for v in labels.column("label").to_pylist())
    assert stats["metrics"]["oracle"] == "scripted:test" and stats["metrics"]["oracle_is_llm"] is True


def test_a_killed_run_resumes_without_rerating_finished_shards(input_lake):
    cfg = OracleLabelConfig(sample_size=50, shard_size=20)
    with pytest.raises(KeyboardInterrupt):
        oracle_label.run(input_lake, VERSION, SNAPSHOT, cfg, oracle=ScriptedOracle(crash_after=20))
    assert input_lake.commit_info(V1, "oracle_label") is None
    resumed = ScriptedOracle()
    stats = oracle_label.run(input_lake, VERSION, SNAPSHOT, cfg, oracle=resumed)
    assert resumed.rated == 30                              # shard 0 (20 files) was adopted, not re-rated
    labels = input_lake.read_table(V1, "oracle_label", "labels")
    failures = input_lake.read_table(V1, "oracle_label", "failures")
    ids = labels.column("id").to_pylist() + failures.column("id").to_pylist()
    assert len(ids) == len(set(ids)) == 50 == stats["records_in"]
    fresh = oracle_label.run(input_lake, VERSION, SNAPSHOT, cfg, oracle=ScriptedOracle(), resume=False)
    assert fresh["records_out"] == stats["records_out"]     # deterministic: same sample, same labels
    assert input_lake.read_table(V1, "oracle_label", "labels").sort_by("id").equals(labels.sort_by("id"))


def test_resume_refuses_an_attempt_started_on_another_input(input_lake, corpus):
    from tests.training.quality.corpus import commit_input

    cfg = OracleLabelConfig(sample_size=30, shard_size=10)
    with pytest.raises(KeyboardInterrupt):
        oracle_label.run(input_lake, VERSION, SNAPSHOT, cfg, oracle=ScriptedOracle(crash_after=10))
    commit_input(input_lake, SNAPSHOT, corpus.slice(0, 50))
    with pytest.raises(ValueError, match="--fresh"):
        oracle_label.run(input_lake, VERSION, SNAPSHOT, cfg, oracle=ScriptedOracle())
    assert oracle_label.run(input_lake, VERSION, SNAPSHOT, cfg, oracle=ScriptedOracle(), resume=False)["records_in"] == 30


def test_cli_reports_a_missing_input_clearly(make_config, tmp_path, caplog):
    import yaml

    cfg_path = tmp_path / "cfg.yaml"
    cfg = make_config()
    cfg_path.write_text(yaml.safe_dump({"profile": "local", "lake": {"root": cfg.lake.root}}))
    assert oracle_label.main(["--version", VERSION, "--snapshot", SNAPSHOT, "--config", str(cfg_path)]) == 2
    assert "stage 'pii_redact' has no committed output" in caplog.text


def test_an_empty_input_commits_empty_labels(lake, corpus):
    from tests.training.quality.corpus import commit_input

    commit_input(lake, SNAPSHOT, corpus.slice(0, 0), parts=1)
    stats = oracle_label.run(lake, VERSION, SNAPSHOT, OracleLabelConfig(sample_size=10))
    assert stats["records_in"] == stats["records_out"] == 0
    assert lake.read_table(V1, "oracle_label", "labels").num_rows == 0


def test_labels_are_recorded_with_their_snapshot_and_can_be_reused_by_a_new_version(input_lake):
    stats = oracle_label.run(input_lake, VERSION, SNAPSHOT, OracleLabelConfig(sample_size=20))
    assert stats["metrics"]["snapshot"] == SNAPSHOT and stats["scorer"] == VERSION
    reused = oracle_label.reuse_labels(input_lake, "v2", VERSION)
    assert reused["metrics"]["labels_from"] == VERSION and reused["metrics"]["snapshot"] == SNAPSHOT
    assert reused["records_out"] == stats["records_out"]
    v2 = input_lake.read_table(Partition.scorer("v2"), "oracle_label", "labels")
    assert v2.sort_by("id").equals(input_lake.read_table(V1, "oracle_label", "labels").sort_by("id"))


def test_a_release_oracle_must_name_a_valid_release():
    assert OracleLabelConfig(oracle="release:2026-q3").oracle == "release:2026-q3"
    with pytest.raises(ValueError, match="oracle must be one of"):
        OracleLabelConfig(oracle="gpt")
    with pytest.raises(ValueError, match="invalid release name"):
        OracleLabelConfig(oracle="release:../x")
