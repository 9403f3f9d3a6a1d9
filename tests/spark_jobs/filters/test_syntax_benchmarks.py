"""The syntax benchmarks run end to end at tiny size (their numbers go to benchmarks/RESULTS-filters.md)."""

import importlib.util
import json
import shutil
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[3] / "benchmarks"


def load(name):
    spec = importlib.util.spec_from_file_location(f"bench_{name}", BENCH / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def test_corruptions_are_seeded_and_distinct():
    bench = load("syntax_filter")
    text = "def f(a):\n    return g(a)\n"
    first = bench.corruptions(text, "x.py")
    assert first == bench.corruptions(text, "x.py") and first != bench.corruptions(text, "y.py")
    assert [kind for kind, _ in first] == ["truncate", "unbalanced", "stray"]
    assert all(bad != text for _, bad in first)


@pytest.mark.skipif(shutil.which("node") is None, reason="node is the JavaScript ground truth")
def test_accuracy_benchmark_tiny(capsys):
    assert load("syntax_filter").main(["--allow-busy", "--limit", "4", "--languages", "Python,JavaScript,C"]) == 0
    out = capsys.readouterr().out
    assert "Python" in out and "precision" in out and "peer ast.parse" in out and "V8" in out
    assert "threshold keeping 98%" in out


def test_java_accuracy_tiny(capsys):
    bench = load("syntax_filter")
    if not (bench.JDK / "lib" / "src.zip").exists():
        pytest.skip(f"no JDK sources at {bench.JDK}")
    assert bench.main(["--allow-busy", "--limit", "3", "--languages", "Java"]) == 0
    assert "peer javac parser" in capsys.readouterr().out


def test_language_survey_tiny(tmp_path, capsys):
    for i in range(3):
        (tmp_path / f"m{i}.py").write_text(f"x = {i}\n")
        (tmp_path / f"b{i}.py").write_text(f"x = ({i}\n")
    assert load("syntax_languages").main(["--allow-busy", "--roots", str(tmp_path), "--min-files", "2"]) == 0
    line = next(row for row in capsys.readouterr().out.splitlines() if row.startswith("Python"))
    assert line.split()[1:3] == ["6", "0.500"]  # 6 distinct files, half with an error node


def test_cfamily_benchmark_tiny(tmp_path, capsys):
    import shutil as sh

    if sh.which("gcc") is None:
        pytest.skip("gcc labels the C samples")
    bench = load("syntax_cfamily")
    text = "int add(int a, int b) {\n    int c = a + b;\n    return c * (a - b);\n}\nint twice(int x) { return add(x, x); }\n"
    assert bench.corrupt(text, "delete_bracket", "s") != text
    assert bench.corrupt(text, "truncate", "s") == bench.corrupt(text, "truncate", "s")
    assert bench.label([]) == "valid" and bench.label(["expected ';' before '}' token"]) == "invalid"
    assert bench.label(["'x' undeclared (first use in this function)"]) == "semantic"
    assert bench.main(["--allow-busy", "--languages", "C", "--base", "3", "--pool", "5", "--workdir", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "C [compile]: " in out and "C [tree-sitter]: " in out and "recall" in out and "valid real dropped" in out
    assert "truncate" in out


def test_decontamination_benchmark_tiny(capsys, tmp_path):
    """Ours and the tuple-set peer agree on every file (the script fails otherwise) and a ratio is printed."""
    out_json = tmp_path / "decontam.json"
    assert load("decontamination").main(["--allow-busy", "--wait-quiet", "0", "--megabytes", "0.3",
                                         "--rounds", "1", "--json", str(out_json)]) == 0
    out = capsys.readouterr().out
    assert "same verdicts on all" in out and "ours / tuple set throughput" in out
    result = json.loads(out_json.read_text())
    assert result["files"] > 5 and result["index_ngrams"] > 10_000 and result["ratio"] > 0


def test_the_decontamination_peer_finds_a_copied_evaluation_task():
    bench = load("decontamination")
    from lake.evalsets import mbpp_texts
    from lake.ngrams import EvalNgramIndex, EvalSetsConfig

    texts = mbpp_texts()
    peer = bench.TupleSetIndex(texts)
    ours = EvalNgramIndex.from_settings(EvalSetsConfig(humaneval=False))
    copied = "# a file\n" + max(texts, key=len) + "\nprint('done')\n"
    assert peer.contaminated(copied) and ours.contaminated(copied)[0]
    assert not peer.contaminated("def unrelated():\n    return 1\n") and not bench.TupleSetIndex([]).contaminated(copied)
