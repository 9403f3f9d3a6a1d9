"""The tokenizer stage: special ids, digit splitting, byte-exact round trips, HF format, determinism."""

from __future__ import annotations

import json

import dataset_fixtures
import pytest
from dataset_fixtures import file_rows, stdlib_texts
from hypothesis import given, settings
from hypothesis import strategies as st

from lake import tokens
from lake.stage import Lake, Partition
from spark_jobs.dataset import tokenizer as tok
from tests.release_fixtures import commit_release

R1 = Partition.release("r1")

tiny_tokenizer = dataset_fixtures.tiny_tokenizer  # the session fixture, shared


def test_special_tokens_have_the_released_ids(tiny_tokenizer):
    assert tiny_tokenizer.token_to_id(tokens.BOS) == 0
    assert tiny_tokenizer.token_to_id(tokens.EOS) == 2
    for name in (tokens.PAD, tokens.SEP, tokens.FIM_PREFIX, tokens.FIM_SUFFIX, tokens.FIM_MIDDLE):
        assert tiny_tokenizer.token_to_id(name) == tokens.SPECIAL_IDS[name]


def test_digits_are_split_one_by_one(tiny_tokenizer):
    pieces = tiny_tokenizer.encode("x = 1234567890").tokens
    digits = [p for p in pieces if any(c.isdigit() for c in p)]
    assert digits and all(len(p.lstrip("Ġ")) == 1 for p in digits)


def test_special_token_look_alikes_in_text_stay_text(tiny_tokenizer):
    ids = tiny_tokenizer.encode("a <[fim-prefix]> b <[end▁of▁sentence]>").ids
    assert not set(ids) & set(tokens.SPECIAL_IDS.values())


@given(st.text(max_size=200))
@settings(max_examples=150, deadline=None)
def test_decode_of_encode_is_byte_exact(tiny_tokenizer, text):
    assert tiny_tokenizer.decode(tiny_tokenizer.encode(text).ids, skip_special_tokens=False) == text


def test_stage_trains_on_the_release_once_and_saves_hf_files(make_config):
    cfg = make_config(stages={"tokenizer": {"vocab_size": 800}})
    lake = cfg.open_lake()
    rows = file_rows("py/json", dict(stdlib_texts("json"))) + file_rows("py/http", dict(stdlib_texts("http")))
    # An older copy kept only for its repository's document is not trained on twice.
    stale = dict(file_rows("py/json", {"json/old.py": "OLD = 1\n"})[0], file_level=False)
    commit_release(lake, "r1", [*rows, stale])
    first = tok.run(lake, "r1", cfg.stage("tokenizer", tok.TokenizerConfig))
    json_a = tokens.tokenizer_json(lake, R1)
    again = tok.run(lake, "r1", cfg.stage("tokenizer", tok.TokenizerConfig))
    assert again == first, "a release's tokenizer never changes once committed"
    assert tokens.tokenizer_json(lake, R1) == json_a
    assert first["records_out"] == first["records_in"] == len(rows) and first["metrics"]["vocab_size"] <= 800
    assert first["metrics"]["policy"] == "train" and len(first["metrics"]["sha256"]) == 64
    files = {k.rsplit("/", 1)[1] for k in lake.dataset_keys(R1, "tokenizer", "tokenizer")}
    assert files == set(tokens.FILES)
    config = json.loads((tokens.local_dir(lake, R1) / "tokenizer_config.json").read_text())
    assert config["bos_token"] == tokens.BOS and config["pad_token"] == tokens.PAD
    # A release pinning r1's tokenizer gets its files byte for byte; a changed source is refused.
    commit_release(lake, "r2", rows[:3], tokenizer="pin", tokenizer_from="r1",
                   tokenizer_sha256=first["metrics"]["sha256"])
    pinned = tok.run(lake, "r2", cfg.stage("tokenizer", tok.TokenizerConfig))
    assert pinned["metrics"]["policy"] == "pin" and pinned["metrics"]["pinned_from"] == "r1"
    assert tokens.tokenizer_json(lake, Partition.release("r2")) == json_a
    commit_release(lake, "r3", rows[:3], tokenizer="pin", tokenizer_from="r1", tokenizer_sha256="0" * 64)
    with pytest.raises(ValueError, match="changed since the cut"):
        tok.run(lake, "r3", cfg.stage("tokenizer", tok.TokenizerConfig))


def test_loads_with_transformers_when_installed(make_config):
    transformers = pytest.importorskip("transformers")
    cfg = make_config(stages={"tokenizer": {"vocab_size": 600}})
    lake = cfg.open_lake()
    commit_release(lake, "r1", file_rows("py/json", dict(stdlib_texts("json"))))
    tok.run(lake, "r1", cfg.stage("tokenizer", tok.TokenizerConfig))
    hf = transformers.AutoTokenizer.from_pretrained(str(tokens.local_dir(lake, R1)))
    assert (hf.bos_token_id, hf.eos_token_id, hf.pad_token_id) == (0, 2, 1)
    text = "def f(x):\n    return x * 42\n"
    assert hf.decode(hf(text)["input_ids"]) == text


def test_missing_release_is_a_clear_error(tmp_path, caplog):
    cfg_path = tmp_path / "c.yaml"
    cfg_path.write_text(f"profile: local\nlake:\n  root: {tmp_path / 'lake'}\n")
    assert tok.main(["--release", "nothing", "--config", str(cfg_path)]) == 2
    assert "no committed output for release 'nothing'" in caplog.text
    assert Lake.at(str(tmp_path / "lake")).commit_info(Partition.release("nothing"), "tokenizer") is None


def test_an_empty_corpus_is_refused(make_config):
    cfg = make_config(stages={"tokenizer": {"vocab_size": 600, "max_file_bytes": 1}})
    lake = cfg.open_lake()
    commit_release(lake, "r1", file_rows("py/json", dict(stdlib_texts("json", 3))))
    with pytest.raises(ValueError, match="no training text"):
        tok.run(lake, "r1", cfg.stage("tokenizer", tok.TokenizerConfig))
    assert lake.commit_info(R1, "tokenizer") is None


def test_build_cli_refuses_a_bad_config_and_a_missing_tokenizer(tmp_path):
    from spark_jobs.dataset import build

    bad = tmp_path / "bad.yaml"
    bad.write_text(f"profile: local\nlake:\n  root: {tmp_path / 'lake'}\n"
                   "stages:\n  dataset_build:\n    fim_rate: {file_level: 2.0}\n")
    assert build.main(["--release", "r1", "--config", str(bad)]) == 2
    good = tmp_path / "good.yaml"
    good.write_text(f"profile: local\nlake:\n  root: {tmp_path / 'lake'}\n")
    lake = Lake.at(str(tmp_path / "lake"))
    commit_release(lake, "r1", file_rows("py/json", dict(stdlib_texts("json", 2))))
    assert build.main(["--release", "r1", "--config", str(good)]) == 2  # no tokenizer committed
    assert lake.commit_info(R1, "dataset_build") is None
