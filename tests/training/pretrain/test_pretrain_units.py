"""The pure parts of pretraining: presets, DeepSpeed config, schedule, mixture loader, document masking,
checkpoint bookkeeping. Fast (a tiny random model at most)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from lake.stage import Lake
from training.pretrain import checkpoint as ckpt
from training.pretrain.config import SEED_CODER_PHASES, PhaseConfig, PretrainConfig
from training.pretrain.data import IGNORE, MixtureLoader, effective_mixture, example
from training.pretrain.ds_config import deepspeed_config
from training.pretrain.presets import PRESETS, flops_per_token, parameter_counts, preset
from training.pretrain.schedule import Schedule

torch = pytest.importorskip("torch")
pytestmark = pytest.mark.gpu_env


# -- presets ---------------------------------------------------------------------------------------
def test_seed_coder_8b_matches_the_released_config():
    from transformers import LlamaForCausalLM

    from training.pretrain.presets import llama_config

    spec = preset("seed-coder-8b").with_vocab(1000)
    cfg = llama_config(spec, bos_id=0, eos_id=2, pad_id=1)
    assert (cfg.num_hidden_layers, cfg.hidden_size, cfg.intermediate_size) == (32, 4096, 14336)
    assert (cfg.num_attention_heads, cfg.num_key_value_heads, cfg.head_dim) == (32, 8, 128)
    assert cfg.vocab_size == 155_136 and cfg.rope_parameters["rope_theta"] == 500_000
    assert cfg.tie_word_embeddings is False and cfg.rms_norm_eps == 1e-6 and cfg.max_position_embeddings == 32768
    with torch.device("meta"):
        model = LlamaForCausalLM(cfg)
    assert sum(p.numel() for p in model.parameters()) == parameter_counts(spec)["total"]


def test_presets_resolve_the_vocabulary_and_refuse_a_too_small_one():
    assert preset("tiny").with_vocab(354).vocab_size == 354
    assert 1e6 < parameter_counts(preset("tiny").with_vocab(4096))["total"] < 1e7  # a few million
    with pytest.raises(ValueError, match="vocabulary of 155136"):
        preset("seed-coder-8b").with_vocab(200_000)
    with pytest.raises(ValueError, match="unknown model preset"):
        preset("70b")


def test_flops_per_token_counts_six_n_plus_causal_attention():
    spec = PRESETS["1b"].with_vocab(155_136)
    n = parameter_counts(spec)["non_embedding"]
    assert flops_per_token(spec, 4096) == 6 * n + 6 * 16 * 2048 * 4096


# -- DeepSpeed config --------------------------------------------------------------------------------
@pytest.mark.parametrize("stage", [0, 1, 2, 3])
def test_deepspeed_config_computes_the_global_batch(stage):
    cfg = PretrainConfig(micro_batch_size=3, grad_accum_steps=5, zero_stage=stage, bf16=True)
    ds = deepspeed_config(cfg, world_size=16, on_gpu=True)
    assert ds["train_batch_size"] == 3 * 5 * 16 == cfg.global_batch(16)
    assert ds["zero_optimization"]["stage"] == stage and ds["bf16"] == {"enabled": True}
    assert ("stage3_gather_16bit_weights_on_model_save" in ds["zero_optimization"]) == (stage == 3)


# -- schedule ------------------------------------------------------------------------------------------
def test_the_report_schedule_scaled_to_a_budget_keeps_its_proportions_and_rates():
    phases = list(SEED_CODER_PHASES)
    sched = Schedule.resolve(phases, warmup_steps=10, global_batch=4, seq_lens={p.name: 8 for p in phases},
                             token_budget=6_000_000)
    steps = [p.steps for p in sched.phases]
    assert steps == [156_250, 12_500, 18_750]  # 5T : 0.4T : 0.6T of 6T tokens, 32 tokens per step
    assert [p.lr for p in sched.phases] == pytest.approx([3e-4, 3e-4 / math.sqrt(10), 3e-5])
    assert sched.lr_at(0) == pytest.approx(3e-5) and sched.lr_at(9) == pytest.approx(3e-4)
    assert sched.phase_at(156_250).name == "continued_high_lr"
    assert sched.lr_at(sched.total_steps - 1) == pytest.approx(3e-5)
    with pytest.raises(IndexError):
        sched.phase_at(sched.total_steps)


def test_config_rejects_ambiguous_phases():
    with pytest.raises(ValueError, match="exactly one of tokens or steps"):
        PhaseConfig(name="x", tokens=10, steps=10, lr=1e-3)
    with pytest.raises(ValueError, match="unique"):
        PretrainConfig(phases=[PhaseConfig(name="a", steps=1, lr=1), PhaseConfig(name="a", steps=1, lr=1)])
    with pytest.raises(ValueError, match="positive sum"):
        PhaseConfig(name="x", steps=1, lr=1e-3, mixture={"commits": 0.0})


# -- data ---------------------------------------------------------------------------------------------
class FakeSource:
    """Rows whose first token names (source, row), so draws can be checked."""

    def __init__(self, tag: int, rows: int, seq_len: int = 8):
        self.tag, self.rows, self.seq_len = tag, rows, seq_len

    def __len__(self):
        return self.rows

    def __getitem__(self, i):
        tokens = np.full(self.seq_len, 10 + i, dtype=np.uint32)
        tokens[0] = self.tag
        return tokens, np.array([0, 3], dtype=np.int64)

    def valid_tokens(self, i):
        return self.seq_len if i else self.seq_len - 2


SOURCES = {"file_level": FakeSource(1, 13), "repo_level": FakeSource(2, 5)}
MIX = {"file_level": 0.7, "repo_level": 0.3}


def loader(**kw):
    args = {"seed": 7, "micro_batch_size": 2, "grad_accum_steps": 2, "world_size": 1, "rank": 0} | kw
    return MixtureLoader(SOURCES, **args)


def draws(ld, steps, start=0):
    return [ld.draw(s, MIX) for s in range(start, start + steps)]


def test_the_mixture_is_deterministic_and_resumes_exactly():
    full = draws(loader(), 12)
    assert full == draws(loader(), 12)
    assert full != draws(loader(seed=8), 12)
    first = loader()
    draws(first, 5)
    resumed = loader()
    resumed.load_state_dict(first.state_dict())
    assert draws(resumed, 7, start=5) == full[5:]
    with pytest.raises(ValueError, match="global batch"):
        loader(micro_batch_size=3).load_state_dict(first.state_dict())
    with pytest.raises(ValueError, match="sequential"):
        loader().draw(3, MIX)


def test_every_row_of_a_source_is_seen_once_per_epoch_and_weights_hold():
    rows = [r for step in draws(loader(), 200) for r in step]
    file_rows = [row for name, row in rows if name == "file_level"]
    for epoch in range(len(file_rows) // 13):
        assert sorted(file_rows[epoch * 13 : (epoch + 1) * 13]) == list(range(13))
    share = len(file_rows) / len(rows)
    assert 0.65 < share < 0.75


def test_ranks_split_the_same_global_draw():
    one = loader(micro_batch_size=2, grad_accum_steps=2, world_size=1)
    two = [loader(micro_batch_size=1, grad_accum_steps=2, world_size=2, rank=r) for r in (0, 1)]
    for step in range(4):
        whole = one.step_batches(step, MIX)
        parts = [ld.step_batches(step, MIX) for ld in two]
        flat = [row for mb in whole for row in mb.rows]
        split = [row for m in range(2) for r in range(2) for row in parts[r][m].rows]
        assert flat == split


def test_micro_batches_carry_document_positions_and_masked_labels():
    mb = loader().step_batches(0, MIX)[0]
    assert mb.input_ids.dtype == np.int64 and mb.input_ids.shape == (2, 8)
    for (_name, row), positions in zip(mb.rows, mb.position_ids, strict=True):
        # row 0 of a fake source ends in 2 padding tokens, which form their own segment
        assert positions.tolist() == ([0, 1, 2, 0, 1, 2, 0, 1] if row == 0 else [0, 1, 2, 0, 1, 2, 3, 4])
    assert (mb.labels[:, 3] == IGNORE).all()  # first token of the second document
    assert mb.loss_tokens == int((mb.labels != IGNORE).sum())


def test_example_masks_padding_and_restarts_positions():
    ids, labels, pos = example(np.array([9, 9, 9, 9, 1, 1], dtype=np.uint32), np.array([], dtype=np.int64), 4)
    assert pos.tolist() == [0, 1, 2, 3, 0, 1] and labels.tolist() == [9, 9, 9, 9, IGNORE, IGNORE]


def test_empty_sources_lose_their_weight_and_all_empty_is_an_error():
    assert effective_mixture({"a": 1, "b": 1}, {"a": 3, "b": 0}) == ({"a": 1.0}, ["b"])
    with pytest.raises(ValueError, match="no rows to train on"):
        effective_mixture({"a": 1}, {"a": 0})


# -- attention stays inside documents -----------------------------------------------------------------------
@pytest.mark.parametrize("attn", ["sdpa", "eager"])
def test_a_packed_row_gives_each_document_the_logits_it_has_alone(attn):
    from training.pretrain.presets import build_model

    spec = preset("tiny").with_vocab(300)
    model = build_model(spec, seed=0, bos_id=0, eos_id=2, pad_id=1, attn_implementation=attn).eval()
    rng = np.random.default_rng(0)
    a, b = rng.integers(10, 300, 11), rng.integers(10, 300, 9)
    ids, _, pos = example(np.concatenate([a, b]).astype(np.uint32), np.array([0, 11]), 20)
    with torch.no_grad():
        packed = model(input_ids=torch.tensor(ids)[None], position_ids=torch.tensor(pos)[None]).logits[0]
        alone_a = model(input_ids=torch.tensor(a)[None]).logits[0]
        alone_b = model(input_ids=torch.tensor(b)[None]).logits[0]
        leaky = model(input_ids=torch.tensor(ids)[None]).logits[0]  # plain causal: b sees a
    torch.testing.assert_close(packed[:11], alone_a, atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(packed[11:], alone_b, atol=1e-4, rtol=1e-4)
    assert not torch.allclose(leaky[11:], alone_b, atol=1e-3)


# -- checkpoint bookkeeping ---------------------------------------------------------------------------
def test_only_complete_checkpoints_count_and_pruning_keeps_the_newest(tmp_path):
    lake = Lake.at(str(tmp_path))
    prefix = "snapshot=s/pretrain/attempt=a"
    for step in (10, 20, 30):
        lake.storage.write_bytes(f"{ckpt.checkpoint_prefix(prefix, step)}/model.pt", b"w")
        if step != 30:
            ckpt.write_state(lake.storage, prefix, step, {"step": step})
    assert ckpt.complete_steps(lake.storage, prefix) == [10, 20]  # 30 has no trainer_state.json
    assert ckpt.prune(lake.storage, prefix, keep=1) == [10]
    assert ckpt.complete_steps(lake.storage, prefix) == [20]
    assert lake.storage.exists(f"{ckpt.checkpoint_prefix(prefix, 30)}/model.pt")  # newer, still being written


def test_resume_refuses_another_architecture():
    saved = preset("tiny").with_vocab(300).architecture()
    ckpt.check_architecture(saved, dict(saved), "x")
    with pytest.raises(ckpt.ArchitectureMismatch, match="hidden_size: checkpoint 256 vs run 512"):
        ckpt.check_architecture(saved, saved | {"hidden_size": 512}, "x")


# -- fused loss -------------------------------------------------------------------------------------------
@pytest.mark.parametrize("chunk", [1, 5, 64])
def test_fused_linear_cross_entropy_matches_the_plain_loss_and_gradients(chunk):
    import torch.nn.functional as F

    from training.pretrain.loss import fused_linear_cross_entropy

    gen = torch.Generator().manual_seed(0)
    hidden = torch.randn(2, 9, 16, generator=gen, requires_grad=True)
    weight = torch.randn(50, 16, generator=gen, requires_grad=True)
    labels = torch.randint(0, 50, (2, 9), generator=gen)
    labels[0, 3] = labels[1, 5] = IGNORE
    plain = F.cross_entropy((hidden[:, :-1] @ weight.t()).reshape(-1, 50), labels[:, 1:].reshape(-1),
                            ignore_index=IGNORE)
    grads = torch.autograd.grad(3 * plain, (hidden, weight))
    fused = fused_linear_cross_entropy(hidden, weight, labels, chunk=chunk)
    fused_grads = torch.autograd.grad(3 * fused, (hidden, weight))
    torch.testing.assert_close(fused, plain)
    for a, b in zip(fused_grads, grads, strict=True):
        torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-5)


def test_the_training_model_gives_the_same_loss_fused_or_not():
    from training.pretrain.engine import TrainingModel
    from training.pretrain.presets import build_model

    lm = build_model(preset("tiny").with_vocab(300), seed=0, bos_id=0, eos_id=2, pad_id=1)
    ids, labels, pos = (torch.tensor(x)[None] for x in example(
        np.arange(10, 40, dtype=np.uint32), np.array([0, 12]), 27))
    plain = TrainingModel(lm)(ids, labels, pos)
    fused = TrainingModel(lm, fused_loss_chunk=7)(ids, labels, pos)
    torch.testing.assert_close(fused, plain, atol=1e-5, rtol=1e-5)
    assert set(TrainingModel.export_state(TrainingModel(lm).state_dict())) == set(lm.state_dict())
    with pytest.raises(ValueError, match="ZeRO-3"):
        PretrainConfig(zero_stage=3, fused_loss_chunk=4096)


# -- the stage's errors name the bad input ---------------------------------------------------------------------
def test_a_missing_input_or_tokenizer_is_one_clear_error(tmp_path, caplog):
    import yaml

    from lake.stage import Partition, StageRun
    from training.pretrain.stage import main

    config = tmp_path / "cfg.yaml"
    config.write_text(yaml.safe_dump({"profile": "local", "lake": {"root": str(tmp_path / "lake")},
                                      "stages": {"pretrain": {"local": {"launcher": "inline"}}}}))
    assert main(["--release", "nope", "--config", str(config)]) == 2
    assert "stage 'dataset_build' has no committed output for release 'nope'" in caplog.text
    lake = Lake.at(str(tmp_path / "lake"))
    notok = Partition.release("notok")
    with StageRun(lake, notok, "dataset_build") as run:
        run.write_bytes("token_index.json",
                        b'{"format": "seedcoder-token-shards/1", "tokenizer": {"release": "notok"}}')
    caplog.clear()
    assert main(["--release", "notok", "--config", str(config)]) == 2
    assert "stage 'tokenizer' has no committed output for release 'notok'" in caplog.text
    assert lake.commit_info(notok, "pretrain") is None


def test_the_k8s_profile_resolves_against_shards_of_the_k8s_dataset_build():
    """8K file_level rows for the regular phase, 32K repo_level/commits rows for the continued phases."""
    from pathlib import Path

    from lake.config import load_config
    from training.pretrain.train import resolve_schedule

    repo = Path(__file__).resolve().parents[3]
    cfg = load_config(repo / "config" / "k8s.yaml").stage("pretrain", PretrainConfig)
    sources = {"file_level": FakeSource(1, 100, 8192), "repo_level": FakeSource(2, 10, 32768),
               "commits": FakeSource(3, 10, 32768)}

    class Stats:
        drops: list = []

        def drop(self, reason, count=1):
            self.drops.append(reason)

    sched = resolve_schedule(cfg, sources, world_size=32, stats=Stats())
    assert [p.seq_len for p in sched.phases] == [8192, 32768, 32768]
    assert cfg.global_batch(32) == 128
    assert sched.phases[0].steps == math.ceil(5e12 / (128 * 8192))
    with pytest.raises(ValueError, match="different seq_len"):
        bad = cfg.model_copy(update={"phases": [PhaseConfig(name="x", steps=1, lr=1e-4,
                                                            mixture={"file_level": 1, "commits": 1})]})
        resolve_schedule(bad, sources, world_size=1, stats=Stats())


def test_a_phase_refuses_shards_built_with_another_fim_rate():
    from training.pretrain.train import check_fim_rate

    class Built(FakeSource):
        def __init__(self, rate):
            super().__init__(1, 4)
            self.meta = {"fim_rate": rate}

    phase = PhaseConfig(name="continued", steps=1, lr=1e-4, fim_rate=0.1)
    check_fim_rate(phase, {"repo_level": Built(0.1), "commits": Built(0.0)})  # commits: built without FIM
    check_fim_rate(phase.model_copy(update={"fim_rate": None}), {"file_level": Built(0.5)})
    with pytest.raises(ValueError, match="expects FIM rate 0.1 but source file_level was built with 0.5"):
        check_fim_rate(phase, {"file_level": Built(0.5)})


def test_continued_pretraining_refuses_another_tokenizer_or_architecture(tmp_path):
    """A base release's model is only a starting point for a release with its tokenizer and the same shapes."""
    import torch
    from safetensors.torch import save_file

    from lake.release import partition
    from lake.stage import StageRun
    from tests.training.pretrain.pretrain_lake import build_shards
    from training.pretrain import base_model
    from training.pretrain.checkpoint import ArchitectureMismatch
    from training.pretrain.presets import build_model, preset

    lake = Lake.at(str(tmp_path / "lake"))
    build_shards(lake, "base")
    spec = preset("tiny").with_vocab(400)
    with StageRun(lake, partition("base"), "pretrain") as run:
        model = build_model(spec, seed=1, bos_id=0, eos_id=2, pad_id=1)
        buf = tmp_path / "model.safetensors"
        save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(buf))
        run.write_bytes("hf/model.safetensors", buf.read_bytes())
        run.write_bytes("hf/config.json", b"{}")
    build_shards(lake, "own-tokenizer")
    from spark_jobs.dataset import tokenizer as tok
    from tests.release_fixtures import commit_release

    commit_release(lake, "own-tokenizer-2", [], base="base")  # a manifest naming the base, its own tokenizer
    other = tok.train(iter(["select * from other_words where x = 1;\n"] * 20), vocab_size=300, min_frequency=1)
    with StageRun(lake, partition("own-tokenizer-2"), "tokenizer") as run:
        for name, data in tok.hf_files(other).items():
            run.write_bytes(f"tokenizer/{name}", data)
    with pytest.raises(ValueError, match="another tokenizer than its base 'base'"):
        base_model.resolve(lake, partition("own-tokenizer-2"), "auto")
    assert base_model.resolve(lake, partition("own-tokenizer"), "auto") is None, "no base: from scratch"
    with pytest.raises(ValueError, match="names no base release"):
        base_model.resolve(lake, partition("own-tokenizer"), "base_release")

    build_shards(lake, "pinned", base="base")
    found = base_model.resolve(lake, partition("pinned"), "auto")
    assert found.release == "base" and (found.directory / "model.safetensors").exists()
    same = build_model(spec, seed=2, bos_id=0, eos_id=2, pad_id=1)
    assert base_model.load_weights(same, found.directory) == len(same.state_dict())
    assert all(torch.equal(a, b) for a, b in zip(same.state_dict().values(), model.state_dict().values(),
                                                 strict=True))
    wider = build_model(preset("tiny").with_vocab(500), seed=2, bos_id=0, eos_id=2, pad_id=1)
    with pytest.raises(ArchitectureMismatch, match="model.embed_tokens.weight: base \\(400, 256\\)"):
        base_model.load_weights(wider, found.directory)


def test_the_inline_launcher_is_one_rank():
    from pydantic import ValidationError

    from training.pretrain.config import LocalLaunchConfig

    assert LocalLaunchConfig(launcher="inline").processes == 1
    assert LocalLaunchConfig(launcher="deepspeed", processes=2).processes == 2
    with pytest.raises(ValidationError, match="needs launcher: deepspeed"):
        LocalLaunchConfig(launcher="inline", processes=2)
