"""Helpers of the evaluation tests: a tokenizer and a random-init tiny model built on the spot, a lake holding
them as a pretrain export, and generators that answer from the benchmarks' own solutions (or wrongly)."""

from __future__ import annotations

import json
import re
import sysconfig
from pathlib import Path

import pyarrow as pa

from lake import tokens
from lake.evalsets import humaneval, mbpp
from lake.stage import Lake, Partition, StageRun
from training.evaluate.completions import truncate
from training.evaluate.fim_tasks import fim_tasks
from training.evaluate.generate import Generator

REPO = Path(__file__).resolve().parents[3]
SPAN = 4  # the FIM tasks' longest span in these tests (config and answer key alike)


def corpus() -> list[str]:
    stdlib = Path(sysconfig.get_paths()["stdlib"])
    texts = [p.read_text(encoding="utf-8") for p in sorted((stdlib / "json").glob("*.py"))]
    return texts + [t.prompt + t.canonical + t.test for t in humaneval()] + [t.canonical for t in mbpp("all")]


def build_model(out: Path, *, vocab_size: int = 1200, preset_name: str = "tiny", texts: list[str] | None = None,
                max_position_embeddings: int = 2048) -> Path:
    """A random-init Llama of a pretrain preset (tiny by default) with our tokenizer (FIM markers included) trained on
    ``texts`` (default: :func:`corpus`), HF format. benchmarks/rl_*.py build their policies with it too."""
    import torch
    from transformers import LlamaForCausalLM

    from spark_jobs.dataset import tokenizer as tok
    from training.pretrain.presets import llama_config, preset

    tokenizer = tok.train(iter(corpus() if texts is None else texts), vocab_size=vocab_size, min_frequency=2)
    out.mkdir(parents=True, exist_ok=True)
    for name, data in tok.hf_files(tokenizer).items():
        (out / name).write_bytes(data)
    spec = preset(preset_name).with_vocab(tokenizer.get_vocab_size())
    config = llama_config(spec, bos_id=tokens.SPECIAL_IDS[tokens.BOS], eos_id=tokens.SPECIAL_IDS[tokens.EOS],
                          pad_id=tokens.SPECIAL_IDS[tokens.PAD])
    config.max_position_embeddings = max_position_embeddings
    torch.manual_seed(0)
    LlamaForCausalLM(config).save_pretrained(out, safe_serialization=True)
    return out


def commit_model(lake: Lake, release: Partition, model_dir: Path) -> None:
    """Commit ``model_dir`` as the release's pretrain export (``hf``), as training.pretrain does."""
    with StageRun(lake, release, "pretrain") as run:
        for path in sorted(model_dir.iterdir()):
            run.write_bytes(f"hf/{path.name}", path.read_bytes())
        run.stats.records_out = 1


def commit_heldout(lake: Lake, release: Partition) -> list[dict]:
    """A ``dataset_build`` commit with a ``heldout`` dataset of real files in two languages."""
    stdlib = Path(sysconfig.get_paths()["stdlib"])
    rows = [{"id": f"py{i}", "repo": "cpython/email", "path": p.name, "language": "Python",
             "content": p.read_text(encoding="utf-8")} for i, p in enumerate(sorted((stdlib / "email").glob("*.py"))[:6])]
    rows += [{"id": f"md{i}", "repo": "docs/readme", "path": f"r{i}.md", "language": "Markdown",
              "content": f"# Title {i}\n\nSome prose about the module number {i}, and how to use it.\n" * 20}
             for i in range(3)]
    with StageRun(lake, release, "dataset_build") as run:
        run.write_table("heldout", pa.Table.from_pylist(rows), 0)
    return rows


class AnswerKey(Generator):
    """Answers every prompt from the benchmarks' own solutions (``right``) or with a wrong body.

    It sees only token ids, as a model does: it decodes them and looks the prompt up, then cuts its answer at the
    stop sequences like the real backends. Counts the prompts it was asked, to check resumption."""

    name = "answer-key"
    max_model_len = 1 << 20

    def __init__(self, model_dir: Path, *, right: bool, fail_after: int | None = None, max_span_lines: int = SPAN):
        from transformers import AutoTokenizer

        self.tokenizer = AutoTokenizer.from_pretrained(model_dir)
        self.right = right
        self.fail_after = fail_after
        self.calls = 0
        self.prompts = 0
        self.by_prompt = {t.prompt: t for t in humaneval() + mbpp("test")}
        self.fim = {(t.prefix, t.suffix): t for kind in ("single_line", "multi_line")
                    for t in fim_tasks(humaneval(), kind, max_span_lines=max_span_lines)}

    def generate(self, prompts, params):
        self.calls += 1
        if self.fail_after is not None and self.calls > self.fail_after:
            raise RuntimeError("killed")
        self.prompts += len(prompts)
        out = []
        for ids in prompts:
            text = self.tokenizer.decode(ids, skip_special_tokens=False)
            if text.startswith(tokens.FIM_SUFFIX):
                suffix, prefix = re.match(re.escape(tokens.FIM_SUFFIX) + r"(.*)" + re.escape(tokens.FIM_PREFIX)
                                          + r"(.*)" + re.escape(tokens.FIM_MIDDLE) + r"$", text, re.S).groups()
                # wrong: a middle that cannot run (a masked line may be redundant, so "pass" can still pass)
                answer = self.fim[(prefix, suffix)].middle if self.right else "    x = (\n"
            else:
                task = self.by_prompt[text]
                answer = task.canonical if self.right else (
                    "    return None\n" if task.benchmark == "humaneval" else f"def {task.entry_point}(*a):\n    return None\n")
            out.append([truncate(answer, params.stop) for _ in range(params.n)])
        return out

    def close(self) -> None:
        pass


def config_file(path: Path, lake_root: Path, **evaluate) -> Path:
    section = {"limits": {"run_timeout": 20}, **evaluate}
    section["fim"] = {"max_span_lines": SPAN, **section.get("fim", {})}
    path.write_text(json.dumps({"profile": "local", "lake": {"root": str(lake_root)},
                                "stages": {"evaluate": section, "sandbox": {"workers": 2}}}))
    return path
