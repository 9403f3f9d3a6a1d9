"""Stage ``evaluate``: does the model write code that runs? HumanEval and MBPP pass@k, FIM, held-out bits per byte.

    python -m training.evaluate --release 2026-q3 [--model DIR] [--config PATH] [--fresh]

1. The model: the Hugging Face export the ``pretrain`` stage committed for the release (``--model`` instead
   for a model by hand). Its tokenizer encodes the prompts; FIM prompts are built from token ids in SPM order.
2. Per benchmark: ``n`` completions per task (vLLM, or transformers), cut at the stop sequences, each judged in
   the sandbox (training/sandbox: HumanEval's ``check(candidate)``, MBPP's asserts); pass@k with the unbiased
   estimator (training/evaluate/passk.py).
3. FIM: single- and multi-line infilling tasks cut from HumanEval's canonical solutions
   (training/evaluate/fim_tasks.py), greedy; exact match of the middle and pass@1 of the filled program.
4. Held-out loss: bits per byte per language on the files of the repositories the dataset build held out.
5. The attempt commits ``samples``, ``fim``, ``bpb`` (parquet) and ``report`` (results.json, results.md,
   results.svg), beside the model in the lake; the headline numbers go to the stats (and the task's XCom and the
   Asset event). Each part is a resumable shard: a killed run re-run with the same model and config skips the
   parts it finished, and one with another model or config starts a new attempt.
"""

from __future__ import annotations

import asyncio
import json
import logging
import tempfile
import time
from collections import Counter
from pathlib import Path

import pyarrow as pa

from lake.config import PlatformConfig
from lake.evalsets import humaneval, tasks
from lake.stage import Lake, Partition, StageRun
from training.evaluate import bpb as bpb_mod
from training.evaluate import report
from training.evaluate.completions import exact_match, fill
from training.evaluate.config import EvaluateConfig
from training.evaluate.fim_tasks import fim_tasks
from training.evaluate.generate import Generator, GenParams, make_generator, model_context
from training.evaluate.passk import mean_pass_at_k
from training.sandbox import SandboxConfig, SandboxPool, Tests
from training.sandbox.client import SandboxClient

log = logging.getLogger(__name__)
STAGE = "evaluate"
CONFIG_SHARD = "config"


def model_dir_of(lake: Lake, release: Partition, ecfg: EvaluateConfig, model: str | None) -> tuple[Path, str]:
    """The local directory of the model to evaluate and how the results name it.

    ``model`` (a by-hand run): a Hugging Face model directory, or the URI of one in the lake (what the pretrain
    stage's stats print as ``export``). None: the export ``model_stage`` committed for the release."""
    if model:
        return given_model(lake, model)
    commit = lake.require(release, ecfg.model_stage)
    if ecfg.model_dataset not in commit.datasets:
        raise FileNotFoundError(f"stage {ecfg.model_stage!r} of {release} committed no "
                                f"{ecfg.model_dataset!r} dataset (has {sorted(commit.datasets)})")
    prefix = f"{commit.prefix}/{ecfg.model_dataset}"
    return lake_model_dir(lake, prefix), lake.storage.uri(prefix)


def given_model(lake: Lake, model: str) -> tuple[Path, str]:
    """A ``--model`` argument: a Hugging Face model directory here, or the URI of one in the lake; its local
    directory and how results name it."""
    path = Path(model).expanduser()
    if path.is_dir():
        if not (path / "config.json").is_file():
            raise FileNotFoundError(f"--model {model}: no Hugging Face model there (config.json is missing)")
        return path.resolve(), str(path.resolve())
    root = lake.root.rstrip("/")
    if model.startswith(root + "/"):
        return lake_model_dir(lake, model[len(root) + 1:].rstrip("/")), model
    raise FileNotFoundError(f"--model {model}: neither a directory here nor a location in the lake {root}")


def lake_model_dir(lake: Lake, prefix: str) -> Path:
    """A local directory with the model files under ``prefix`` (the lake's own on a local lake, else a copy)."""
    keys = lake.storage.list(prefix)
    if f"{prefix}/config.json" not in keys:
        raise FileNotFoundError(f"no Hugging Face model at {lake.storage.uri(prefix)} (config.json is missing)")
    local = lake.storage.local_path(prefix)
    if local is not None:
        return local
    target = Path(tempfile.mkdtemp(prefix="evaluate-model-"))
    for key in keys:
        dest = target / key[len(prefix) + 1:]
        dest.parent.mkdir(parents=True, exist_ok=True)
        dest.write_bytes(lake.storage.read_bytes(key))
    log.info("downloaded the model (%d files) from %s to %s", len(keys), lake.storage.uri(prefix), target)
    return target


async def judge(ecfg: EvaluateConfig, sandbox: SandboxConfig, programs: list[tuple[str, Tests]]):
    """Judge every (program, tests): in a local sandbox pool, or by the sandbox service when one is configured."""
    requests = [{"code": code, "language": "python", "tests": tests, "limits": ecfg.limits} for code, tests in programs]
    if ecfg.sandbox_url:
        return await SandboxClient(ecfg.sandbox_url, concurrency=ecfg.sandbox_concurrency).run_many(
            requests, progress_every=200)
    async with SandboxPool(sandbox) as pool:
        return await pool.run_many(requests, progress_every=200)


class Evaluation:
    """One run of the stage over one attempt (see the module docstring)."""

    def __init__(self, run: StageRun, cfg: PlatformConfig, ecfg: EvaluateConfig, model_dir: Path, model_name: str,
                 generator: Generator | None = None):
        self.run, self.cfg, self.ecfg = run, cfg, ecfg
        self.model_dir, self.model_name = model_dir, model_name
        self.sandbox = cfg.stage("sandbox", SandboxConfig)
        self._generator = generator
        self._tokenizer = None
        self.fingerprint = ecfg.fingerprint(model_name)

    # -- plumbing -----------------------------------------------------------------------------------------
    @property
    def tokenizer(self):
        if self._tokenizer is None:
            from transformers import AutoTokenizer

            self._tokenizer = AutoTokenizer.from_pretrained(self.model_dir)
        return self._tokenizer

    @property
    def generator(self) -> Generator:
        if self._generator is None:
            e = self.ecfg
            self._generator = make_generator(
                e.backend, str(self.model_dir), dtype=e.dtype,
                max_model_len=e.max_model_len or model_context(str(self.model_dir), 8192), seed=e.sampling.seed,
                gpu_memory_utilization=e.gpu_memory_utilization, kv_cache_memory_bytes=e.kv_cache_memory_bytes,
                engine_args=e.engine_args)
            log.info("generating with %s (context %d)", self._generator.name, self._generator.max_model_len)
        return self._generator

    def _done(self, shard: str) -> dict | None:
        if self.run.shard_done(shard):
            info = self.run.shard_info(shard)
            if info.get("fingerprint") == self.fingerprint:
                log.info("%s: already evaluated in this attempt, reusing it", shard)
                return info["summary"]
        return None

    def _finish(self, shard: str, summary: dict) -> dict:
        self.run.mark_shard_done(shard, {"fingerprint": self.fingerprint, "summary": summary})
        return summary

    def _judge(self, programs: list[tuple[str, Tests]]):
        return asyncio.run(judge(self.ecfg, self.sandbox, programs))

    # -- the parts ----------------------------------------------------------------------------------------
    def benchmark(self, bench) -> dict:
        shard = f"benchmark-{bench.name}"
        if (summary := self._done(shard)) is not None:
            return summary
        todo = tasks(bench.name)[: bench.max_tasks] if bench.max_tasks else tasks(bench.name)
        s = self.ecfg.sampling
        params = GenParams(n=s.n, temperature=s.temperature, top_p=s.top_p, max_new_tokens=s.max_new_tokens,
                           stop=bench.stops(), seed=s.seed)
        t0 = time.monotonic()
        completions = self.generator.generate([self.tokenizer.encode(t.prompt, add_special_tokens=False)
                                               for t in todo], params)
        generated = time.monotonic() - t0
        programs = [(task.program(c), Tests(code=task.test, entry_point=task.entry_point))
                    for task, samples in zip(todo, completions, strict=True) for c in samples]
        t1 = time.monotonic()
        results = self._judge(programs)
        judged = time.monotonic() - t1
        rows, counts, verdicts = [], [], Counter()
        it = iter(results)
        for task, samples in zip(todo, completions, strict=True):
            passed = 0
            for i, completion in enumerate(samples):
                r = next(it)
                passed += r.passed
                verdicts[str(r.verdict)] += 1
                rows.append({"benchmark": bench.name, "task_id": task.task_id, "sample": i, "completion": completion,
                             "passed": r.passed, "verdict": str(r.verdict), "detail": r.detail[:1000],
                             "seconds": r.timings.total})
            counts.append((len(samples), passed))
        self.run.write_table("samples", pa.Table.from_pylist(rows), bench.name)
        summary = {"tasks": len(todo), "samples": len(rows), "passed": sum(c for _n, c in counts),
                   "verdicts": dict(sorted(verdicts.items())), "generate_s": round(generated, 2),
                   "judge_s": round(judged, 2), "judged_per_s": round(len(rows) / judged, 2) if judged else None,
                   **{f"pass@{k}": mean_pass_at_k(counts, k) for k in self.pass_k}}
        log.info("%s: %s", bench.name, {k: v for k, v in summary.items() if k.startswith("pass@")})
        return self._finish(shard, summary)

    def fim(self, kind: str) -> dict:
        shard = f"fim-{kind}"
        if (summary := self._done(shard)) is not None:
            return summary
        from training.pretrain.export import spm_prompt_ids

        f = self.ecfg.fim
        todo = fim_tasks(humaneval(), kind, seed=f.seed, max_span_lines=f.max_span_lines, max_tasks=f.max_tasks)
        # A single-line middle ends at its line break; a multi-line one at end of sequence.
        params = GenParams(n=1, temperature=0.0, top_p=1.0, max_new_tokens=f.max_new_tokens,
                           stop=("\n",) if kind == "single_line" else (), seed=f.seed)
        middles = [m[0] for m in self.generator.generate(
            [spm_prompt_ids(self.tokenizer, t.prefix, t.suffix) for t in todo], params)]
        programs = [(fill(t.prefix, m, t.middle, t.suffix), Tests(code=t.source.test, entry_point=t.source.entry_point))
                    for t, m in zip(todo, middles, strict=True)]
        results = self._judge(programs)
        rows = [{"kind": kind, "task_id": t.task_id, "middle": t.middle, "generated": m,
                 "exact_match": exact_match(m, t.middle), "passed": r.passed, "verdict": str(r.verdict)}
                for t, m, r in zip(todo, middles, results, strict=True)]
        self.run.write_table("fim", pa.Table.from_pylist(rows), kind)
        n = len(rows)
        summary = {"tasks": n, "exact_match": sum(r["exact_match"] for r in rows) / n if n else None,
                   "pass@1": sum(r["passed"] for r in rows) / n if n else None}
        log.info("FIM %s: %s", kind, summary)
        return self._finish(shard, summary)

    def bits_per_byte(self) -> dict:
        shard = "bpb"
        if (summary := self._done(shard)) is not None:
            return summary
        b = self.ecfg.bpb
        source = Partition.release(b.release) if b.release else self.run.partition
        commit = self.run.lake.commit_info(source, b.stage)
        if commit is None or b.dataset not in commit.datasets:
            log.warning("no held-out files (%s/%s has no committed %r dataset): bits per byte not measured",
                        source.prefix, b.stage, b.dataset)
            self.run.stats.drop("no_heldout_files")
            return self._finish(shard, {})
        rows = self.run.lake.read_table(source, b.stage, b.dataset, ["id", "language", "content"]).to_pylist()
        files = bpb_mod.pick_files(rows, per_language=b.max_files_per_language, max_bytes=b.max_bytes_per_file)
        window = b.window or model_context(str(self.model_dir), 4096)
        totals = bpb_mod.bits_per_byte(str(self.model_dir), files, window=window, batch_tokens=b.batch_tokens)
        self.run.write_table("bpb", pa.Table.from_pylist([{"language": k, **v} for k, v in sorted(totals.items())]),
                             "languages")
        log.info("held-out bits per byte: %s", {k: v["bits_per_byte"] for k, v in totals.items()})
        return self._finish(shard, {"source": f"{source.prefix}/{b.stage}/{b.dataset}", "per_language": totals})

    @property
    def pass_k(self) -> list[int]:
        return [k for k in self.ecfg.pass_k if k <= self.ecfg.sampling.n]

    # -- the whole ----------------------------------------------------------------------------------------
    def run_all(self) -> dict:
        run, e = self.run, self.ecfg
        if run.shard_done(CONFIG_SHARD) and run.shard_info(CONFIG_SHARD).get("fingerprint") != self.fingerprint:
            log.warning("attempt %s was made with another model or config: starting it over", run.attempt)
            run.storage.delete_prefix(run.attempt_prefix)
        run.mark_shard_done(CONFIG_SHARD, {"fingerprint": self.fingerprint})
        benchmarks = {b.name: self.benchmark(b) for b in e.benchmarks}
        fim = {kind: self.fim(kind) for kind in e.fim.kinds} if e.fim.enabled else {}
        if self._generator is not None:
            run.stats.drop("prompt_truncated", self._generator.truncated_prompts)
            self._generator.close()
        bpb = self.bits_per_byte() if e.bpb.enabled else {}
        results = {"model": self.model_name, "release": run.partition.name,
                   "backend": self._generator.name if self._generator is not None else "resumed",
                   "sampling": e.sampling.model_dump(), "pass_k": self.pass_k, "benchmarks": benchmarks,
                   "fim": fim, "bpb": bpb.get("per_language", {}), "bpb_source": bpb.get("source")}
        run.write_bytes("report/results.json", (json.dumps(results, indent=2, sort_keys=True) + "\n").encode())
        run.write_bytes("report/results.md", report.markdown(results).encode())
        run.write_bytes("report/results.svg", report.chart(results).encode())
        stats = run.stats
        stats.records_in = sum(b["tasks"] for b in benchmarks.values()) + sum(f["tasks"] for f in fim.values())
        stats.records_out = sum(b["samples"] for b in benchmarks.values()) + sum(f["tasks"] for f in fim.values())
        stats.metrics["results"] = results
        stats.metrics["xcom"] = headline(results)
        return results


def headline(results: dict) -> dict:
    """The few numbers the task's XCom and the Asset event carry."""
    out = {f"{name}_{k}": bench.get(k) for name, bench in results["benchmarks"].items() for k in ("pass@1",)}
    for kind, fim in results["fim"].items():
        out[f"fim_{kind}_exact_match"] = fim["exact_match"]
    if "overall" in results["bpb"]:
        out["heldout_bits_per_byte"] = results["bpb"]["overall"]["bits_per_byte"]
    out["model"] = results["model"]
    return out
