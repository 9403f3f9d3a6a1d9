"""Does curation help? Train and evaluate every arm of the ablation with several seeds, then compare.

Each (arm, seed) is one run of the ``ablation`` DAG (dags/ablation.py) through ``dag.test()``, exactly as the
scheduler would run it: the release ``{base}.{arm}.s{seed}`` cut from the base release's snapshots with one stage
switched off, then tokenizer (the base's, pinned) -> dataset_build -> pretrain -> evaluate, with the same preset
and token budget, evaluated on the base release's held-out repositories. Runs go seed by seed (both arms of seed 1, then seed 2, ...), and a run whose
evaluation is already committed is not repeated (``--redo`` repeats it).

    # the real measurement, on the local profile after `bash scripts/demo.sh` (base release `demo`)
    .venv/bin/python benchmarks/ablation.py --base demo --arms curated,no_quality_filter --seeds 1,2,3
    # a self-contained proof at toy size (its own lake and config under .work/ablation-tiny)
    .venv/bin/python benchmarks/ablation.py --tiny

Writes ``ablation.json`` (every run's results and the comparison), ``ablation.md`` (the table, the honest sentence,
machine, date and load averages) and ``ablation.svg`` (held-out bits per byte per arm, mean ± sd) to ``--out``.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import sysconfig
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO), str(REPO / "scripts")]

from benchmarks.quiet import MachineGuard, add_quiet_arguments  # noqa: E402
from training.evaluate import ablation  # noqa: E402

TINY_REPOS = {"cpython/json": "json", "cpython/email": "email", "cpython/unittest": "unittest",
              "cpython/logging": "logging", "cpython/http": "http", "cpython/xml": "xml"}


def tiny_config(root: Path) -> Path:
    """A toy-size profile: a few steps of the tiny preset, a handful of evaluation tasks."""
    phases = [{"name": "regular", "steps": 30, "lr": 1e-3, "fim_rate": 0.5, "mixture": {"file_level": 1.0}}]
    cfg = {"profile": "local", "lake": {"root": str(root / "lake")},
           "spark": {"driver_memory": "1g", "shuffle_partitions": 4},
           "stages": {"tokenizer": {"vocab_size": 1500},
                      "dataset_build": {"seq_len": {"file_level": 256, "repo_level": 1024, "commits": 1024},
                                        "parts": 2, "heldout_fraction": 0.2},
                      "pretrain": {"preset": "tiny", "micro_batch_size": 2, "warmup_steps": 4, "phases": phases,
                                   "checkpoint_every": 50, "log_every": 10, "threads": 1, "peak_flops": 1e11,
                                   "export_dtype": "float32", "scratch_dir": str(root / "scratch")},
                      "evaluate": {"backend": "transformers", "max_model_len": 512, "sampling": {"max_new_tokens": 24},
                                   "benchmarks": [{"name": "humaneval", "max_tasks": 4}],
                                   "fim": {"max_tasks": 8, "max_new_tokens": 16},
                                   "bpb": {"max_files_per_language": 30, "window": 256}},
                      "sandbox": {"workers": 2}}}
    path = root / "tiny.json"
    path.write_text(json.dumps(cfg, indent=2))
    return path


def build_tiny_base(root: Path, base: str) -> None:
    """A base of real code: standard-library packages as repositories in snapshot ``base``, whose ``pii_redact`` holds
    them all plus machine-written files (literal tables, generated code) and whose ``quality_filter`` drops those, as
    a scorer would; then the release ``base`` cut from it, with its tokenizer and dataset build (the held-out set)."""
    import pyarrow as pa

    from lake.languages import language_of
    from lake.schemas import FILES, file_id, sha256_hex
    from lake.stage import Lake, Partition, StageRun

    lake = Lake.at(str(root / "lake"))
    if lake.commit_info(Partition.release(base), "dataset_build") is not None:
        return
    stdlib = Path(sysconfig.get_paths()["stdlib"])
    curated, noise = [], []

    def row(repo: str, path: str, text: str) -> dict:
        data = text.encode()
        commit = sha256_hex(repo.encode())[:40]
        return {"id": file_id(repo, commit, path), "repo": repo, "commit": commit, "path": path,
                "language": language_of(path) or "Text", "license": "PSF-2.0", "stars": 10, "forks": 1,
                "repo_created_at": None, "content": text, "sha256": sha256_hex(data), "size_bytes": len(data),
                "num_lines": text.count("\n") + 1}

    for repo, package in TINY_REPOS.items():
        for path in sorted((stdlib / package).rglob("*.py"))[:30]:
            curated.append(row(repo, str(path.relative_to(stdlib)), path.read_text(encoding="utf-8")))
        for i in range(30):  # what a quality filter drops: data in code, generated boilerplate
            table = ",\n".join(f"    {(i * 7919 + j * 104729) % 99991}" for j in range(400))
            noise.append(row(repo, f"{package}/_generated/table_{i}.py", f"TABLE_{i} = [\n{table}\n]\n"))
    for stage, rows in (("pii_redact", curated + noise), ("quality_filter", curated)):
        if lake.commit_info(base, stage) is None:
            with StageRun(lake, base, stage) as run:
                run.write_table("files", pa.Table.from_pylist(rows, schema=FILES), 0)
                run.stats.records_out = len(rows)
    env = {**os.environ, "SEEDCODER_CONFIG": str(root / "tiny.json"), "PYSPARK_PYTHON": sys.executable}
    if lake.commit_info(Partition.release(base), "release") is None:
        subprocess.run([sys.executable, "-m", "spark_jobs.release", "--release", base, "--snapshots", base],
                       cwd=REPO, env=env, check=True)
    for module in ("spark_jobs.dataset.tokenizer", "spark_jobs.dataset.build"):
        subprocess.run([sys.executable, "-m", module, "--release", base], cwd=REPO, env=env, check=True)


def run_arm(dag, base: str, arm: str, seed: int) -> dict:
    t0 = time.monotonic()
    load = os.getloadavg()[0]
    print(f"==> ablation {arm} seed {seed} (base {base})", flush=True)
    dag_run = dag.test(run_conf={"release": base, "arm": arm, "seed": seed})
    state = str(getattr(dag_run, "state", "unknown"))
    print(f"<== ablation {arm} seed {seed}: {state} in {time.monotonic() - t0:.0f}s", flush=True)
    if "success" not in state:
        raise SystemExit(f"the ablation run {arm} seed {seed} ended {state}; see the task logs above")
    return {"seconds": round(time.monotonic() - t0, 1), "load_before": round(load, 2),
            "load_after": round(os.getloadavg()[0], 2)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--base", default="demo", help="base release (its dataset DAG done)")
    parser.add_argument("--arms", default="curated,no_quality_filter", help="comma-separated arms (dags/ablation.py)")
    parser.add_argument("--seeds", default=None,
                        help="comma-separated seeds, each run for every arm (default 1,2,3; with --tiny 1,2)")
    parser.add_argument("--out", type=Path, default=None, help="where the report goes (default .work/ablation)")
    parser.add_argument("--airflow-home", type=Path, default=REPO / ".airflow")
    parser.add_argument("--redo", action="store_true", help="run again the arms whose evaluation is committed")
    parser.add_argument("--tiny", action="store_true",
                        help="prove the path at toy size: own lake, config and base under .work/ablation-tiny "
                             "(a proof, not a measurement: runs on a busy machine too)")
    add_quiet_arguments(parser)
    args = parser.parse_args(argv)
    guard = MachineGuard.check(max_load=args.max_load, wait_s=0 if args.tiny else args.wait_quiet,
                               allow_busy=args.allow_busy or args.tiny)
    arms = args.arms.split(",")
    # An explicit --seeds is always honoured (it used to be cut to two with --tiny when it equalled the default).
    seeds = [int(s) for s in (args.seeds or ("1,2" if args.tiny else "1,2,3")).split(",")]
    if ablation.REFERENCE not in arms:
        parser.error(f"--arms must include {ablation.REFERENCE!r}, the arm the others are compared with")
    if args.tiny:
        root = REPO / ".work" / "ablation-tiny"
        root.mkdir(parents=True, exist_ok=True)
        os.environ["SEEDCODER_CONFIG"] = str(tiny_config(root))
        args.base, args.airflow_home = "tiny", root / "airflow"
        build_tiny_base(root, args.base)
    out = args.out or (REPO / ".work" / ("ablation-tiny" if args.tiny else "ablation"))
    out.mkdir(parents=True, exist_ok=True)

    import pipeline

    pipeline.setup_airflow_env(args.airflow_home.resolve())
    os.environ["PYSPARK_PYTHON"] = sys.executable
    pipeline.migrate()
    from airflow.dag_processing.dagbag import DagBag

    from lake.config import load_config
    from lake.release import arm_release
    from lake.stage import Partition

    bag = DagBag(dag_folder=str(REPO / "dags"))
    if bag.import_errors:
        raise SystemExit(f"DAG import errors: {bag.import_errors}")
    dag = bag.get_dag("ablation")
    lake = load_config().open_lake()
    timings = {}
    for seed in seeds:
        for arm in arms:
            name = arm_release(args.base, arm, seed)
            if lake.commit_info(Partition.release(name), "evaluate") is not None and not args.redo:
                print(f"=== {name}: evaluation already committed, not run again (--redo to repeat)")
                continue
            timings[name] = run_arm(dag, args.base, arm, seed)

    def results(name: str) -> dict:
        prefix = lake.require(Partition.release(name), "evaluate").prefix
        return json.loads(lake.storage.read_bytes(f"{prefix}/report/results.json"))

    runs = {arm: [results(arm_release(args.base, arm, s)) for s in seeds] for arm in arms}
    rows = ablation.compare(runs)
    sentences = [ablation.sentence(rows, arm) for arm in arms if arm != ablation.REFERENCE]
    report = (f"Ablation on base release `{args.base}`, arms {arms}, seeds {seeds} "
              f"({'toy size: --tiny, a proof of the path, not a result' if args.tiny else 'local profile'}).\n"
              f"{guard.report()}\n\n" + ablation.markdown(rows) + "\n" + "\n".join(f"- {s}" for s in sentences) + "\n")
    (out / "ablation.md").write_text(report)
    (out / "ablation.svg").write_text(ablation.chart(rows))
    (out / "ablation.json").write_text(json.dumps({"base": args.base, "arms": arms, "seeds": seeds, "tiny": args.tiny,
                                                   **guard.summary(), "timings": timings, "runs": runs,
                                                   "comparison": rows}, indent=2, default=str) + "\n")
    print()
    print(report)
    print(f"written: {out / 'ablation.md'}, {out / 'ablation.svg'}, {out / 'ablation.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
