"""A run's partition ids: the manual param, else every triggering Asset event (all of them, in order), else the
data interval; the stage CLI then processes each id in turn and stops at the first failure."""

from __future__ import annotations

from types import SimpleNamespace

import pendulum
import pytest
from stage_launcher import partition_ids


def events(*extras: dict) -> dict:
    return {"seedcoder://lake/crawl": [SimpleNamespace(extra=e) for e in extras]}


def test_a_run_carrying_several_events_processes_all_of_them_in_snapshot_order():
    context = {"params": {"snapshot": None},
               "triggering_asset_events": events({"snapshot": "2026-09"}, {"snapshot": "2026-08"},
                                                 {"snapshot": "2026-10", "snapshots": ["2026-09", "2026-10"]})}
    assert partition_ids("snapshot", context) == "2026-08,2026-09,2026-10"


def test_the_param_wins_then_the_events_then_the_data_interval():
    interval = pendulum.datetime(2026, 7, 1, tz="UTC")
    assert partition_ids("snapshot", {"params": {"snapshot": "2026-05"}, "data_interval_start": interval,
                                      "triggering_asset_events": events({"snapshot": "2026-06"})}) == "2026-05"
    assert partition_ids("snapshot", {"params": {}, "data_interval_start": interval}) == "2026-07"
    assert partition_ids("release", {"params": {"release": None},
                                     "triggering_asset_events": events({"release": "r2", "releases": ["r1", "r2"]})
                                     }) == "r1,r2"
    with pytest.raises(ValueError, match="no release: give the 'release' param"):
        partition_ids("release", {"params": {}, "data_interval_start": interval})
    with pytest.raises(ValueError, match="invalid snapshot name"):
        partition_ids("snapshot", {"params": {}, "triggering_asset_events": events({"snapshot": "../x"})})


def test_the_stage_cli_runs_each_id_in_turn_and_stops_at_the_first_failure(tmp_path):
    from lake.cli import run_stage, stage_parser

    config = tmp_path / "cfg.yaml"
    config.write_text(f"profile: local\nlake:\n  root: {tmp_path / 'lake'}\n")
    seen = []

    def body(args, _cfg):
        seen.append((args.snapshot, str(args.partition)))
        return 1 if args.snapshot == "2026-09" else 0

    parser = stage_parser("demo_stage", "test")
    assert run_stage(parser, ["--snapshot", "2026-08,2026-09,2026-10", "--config", str(config)], body) == 1
    assert seen == [("2026-08", "snapshot '2026-08'"), ("2026-09", "snapshot '2026-09'")]
    seen.clear()
    release_parser = stage_parser("demo_release_stage", "test", partition="release")
    assert run_stage(release_parser, ["--release", "r1", "--config", str(config)],
                     lambda args, _cfg: seen.append(str(args.partition))) == 0
    assert seen == ["release 'r1'"]
