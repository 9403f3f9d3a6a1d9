"""Run the pipeline's DAGs end to end (``dag.test()``, in-process), then say where everything is.

    python scripts/pipeline.py --snapshot demo                   # the whole chain, in order (below)
    python scripts/pipeline.py --snapshot demo --dags crawl,dedup
    python scripts/pipeline.py --release r2 --dags dataset,pretrain
    python scripts/pipeline.py --snapshot demo --summary-only    # just print what is committed

This is what the README's main command runs. The chain: the snapshot DAGs (crawl, dedup, filters), the scorer
DAG when the pinned scorer version does not exist yet (it is trained once, on this snapshot, then reused), the
quality DAG, the release DAG (cuts release ``--release``, default the snapshot's name, from ``--release-snapshots``,
default this snapshot; an existing release is immutable and is reused), then the dataset, pretrain and evaluate
DAGs on the release, and the rl DAG on the release's model (its stages in partition ``{release}.rl``); the summary
ends with the evaluation tables of the pretrained model and of the RL policy. Before the summary it prints every
stage's time split into fixed costs and work (``--timing-json`` keeps it). On the local profile the chain's Spark
stages run in one warm Spark driver started here and stopped at the end (spark_jobs/warm_driver.py; ``--cold-spark``
gives each its own process, as the Airflow scheduler does). Each DAG is run exactly as the scheduler would run it (same tasks, operators and profile), with its
partition given as the run's params; the Asset-scheduled DAGs are run in chain order instead of waiting on Assets.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
SNAPSHOT_DAGS = ["crawl", "dedup", "filters", "scorer", "quality"]
RELEASE_DAGS = ["release", "dataset", "pretrain", "evaluate", "rl"]
CHAIN = SNAPSHOT_DAGS + RELEASE_DAGS


def setup_airflow_env(home: Path) -> None:
    """Point Airflow at this repository's dags/ and plugins/ with a local SQLite metadata DB (unless configured)."""
    os.environ.setdefault("AIRFLOW_HOME", str(home))
    os.environ.setdefault("AIRFLOW__CORE__DAGS_FOLDER", str(REPO / "dags"))
    os.environ.setdefault("AIRFLOW__CORE__PLUGINS_FOLDER", str(REPO / "plugins"))
    os.environ.setdefault("AIRFLOW__CORE__LOAD_EXAMPLES", "False")
    os.environ.setdefault("AIRFLOW__CORE__UNIT_TEST_MODE", "False")
    os.environ["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")])
    for path in (REPO / "plugins", REPO / "dags", REPO):
        if str(path) not in sys.path:
            sys.path.insert(0, str(path))


def migrate() -> None:
    from airflow.utils.db import initdb

    initdb()


def pinned_scorer() -> str | None:
    from lake.config import load_config
    from training.quality.config import ScoreConfig

    return load_config().stage("score", ScoreConfig).scorer_version


def run_conf(dag_id: str, args: argparse.Namespace) -> dict | None:
    """The params of ``dag_id``'s run, or None when the DAG has nothing to do (its immutable output exists)."""
    from lake.config import load_config
    from lake.release import committed as releases
    from lake.stage import Partition

    lake = load_config().open_lake()
    if dag_id == "scorer":
        version = args.scorer_version or pinned_scorer()
        if lake.commit_info(Partition.scorer(version), "train_scorer") is not None:
            print(f"--- scorer {version} exists (scorer versions are immutable): reused", flush=True)
            return None
        return {"scorer": version, "snapshot": None if args.scorer_labels_from else args.snapshot,
                "labels_from": args.scorer_labels_from, "base_model": args.scorer_base, "oracle": args.oracle}
    if dag_id == "quality":
        return {"snapshot": args.snapshot, "scorer": args.scorer_version}
    if dag_id == "release":
        if args.release in releases(lake):
            print(f"--- release {args.release} exists (releases are immutable): reused; cut a new one with "
                  f"--release NAME", flush=True)
            return None
        snapshots = args.release_snapshots.split(",") if args.release_snapshots else [args.snapshot]
        return {"release": args.release, "snapshots": snapshots, "base_release": args.base_release,
                "tokenizer": args.tokenizer, "tokenizer_from": None}
    if dag_id == "rl":
        return {"release": args.release, "model": "", "tasks": ""}
    if dag_id in RELEASE_DAGS:
        return {"release": args.release}
    return {"snapshot": args.snapshot}


@contextmanager
def warm_spark(enabled: bool) -> Iterator[dict]:
    """Start the chain's warm Spark driver (spark_jobs/warm_driver.py) and point the local stage operators at it;
    stop it at the end. Yields what the summary reports (its start-up seconds, or why there is none)."""
    from stage_launcher import stage_process_env

    from lake import warm_spark
    from lake.config import load_config

    info: dict = {"used": False}
    cfg = load_config()
    if not enabled or cfg.profile != "local":
        info["why_not"] = "disabled (--cold-spark)" if not enabled else f"profile {cfg.profile}"
        yield info
        return
    python = Path(cfg.launcher.spark_python)
    python = python if python.is_absolute() else REPO / python
    sock = Path(tempfile.gettempdir()) / f"seedcoder-warm-spark-{os.getpid()}.sock"
    log_path = REPO / ".work" / "warm-spark.log"
    log_path.parent.mkdir(parents=True, exist_ok=True)
    env = stage_process_env(str(python))  # what a stage process would get: the driver runs stages in its place
    t0 = time.monotonic()
    with open(log_path, "ab") as log_file:
        proc = subprocess.Popen([str(python), "-m", "spark_jobs.warm_driver", "--socket", str(sock)], cwd=REPO,
                                env=env, stdout=log_file, stderr=subprocess.STDOUT)
    try:
        while warm_spark.ping(sock) is None:
            if proc.poll() is not None or time.monotonic() - t0 > 300:
                info["why_not"] = f"it did not start (see {log_path})"
                print(f"--- warm Spark driver: {info['why_not']}; every Spark stage starts its own process",
                      flush=True)
                yield info
                return
            time.sleep(0.5)
        info.update(used=True, start_seconds=round(time.monotonic() - t0, 1), log=str(log_path), pid=proc.pid)
        print(f"--- warm Spark driver up in {info['start_seconds']}s (pid {proc.pid}, log {log_path}): the chain's "
              f"Spark stages run in it", flush=True)
        os.environ[warm_spark.ENV] = str(sock)
        yield info
    finally:
        os.environ.pop(warm_spark.ENV, None)
        if proc.poll() is None:
            try:
                for _answer in warm_spark.request(sock, {"op": "stop"}, timeout=30):
                    pass
                proc.wait(timeout=60)
            except (OSError, ConnectionError, subprocess.TimeoutExpired):
                proc.kill()
                proc.wait()


def run_dags(args: argparse.Namespace, dag_ids: list[str]) -> list[dict]:
    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(dag_folder=str(REPO / "dags"))
    if bag.import_errors:
        raise SystemExit(f"DAG import errors: {json.dumps(bag.import_errors, indent=2)}")
    results = []
    for dag_id in dag_ids:
        dag = bag.get_dag(dag_id)
        if dag is None:
            raise SystemExit(f"no DAG {dag_id!r} in {REPO / 'dags'} (have {sorted(bag.dag_ids)})")
        conf = run_conf(dag_id, args)
        if conf is None:
            results.append({"dag": dag_id, "state": "reused", "seconds": 0.0})
            continue
        t0, started = time.monotonic(), time.time()
        print(f"==> {dag_id} ({', '.join(f'{k} {v}' for k, v in conf.items() if v)})", flush=True)
        dag_run = dag.test(run_conf=conf)
        state = str(getattr(dag_run, "state", "unknown"))
        results.append({"dag": dag_id, "state": state, "seconds": round(time.monotonic() - t0, 1),
                        "started": started, "ended": time.time()})
        print(f"<== {dag_id}: {state} in {results[-1]['seconds']}s", flush=True)
        if "success" not in state:
            raise SystemExit(f"DAG {dag_id} ended {state}; see the task logs above")
    return results


def timing_rows(results: list[dict], snapshot: str | None, release: str | None, scorer: str | None) -> list[dict]:
    """Per stage committed by this run's DAGs: its process's wall time split into fixed costs and work."""
    from lake.config import load_config
    from lake.stage import Partition

    lake = load_config().open_lake()
    partitions = [p for p in (snapshot and Partition.snapshot(snapshot), scorer and Partition.scorer(scorer),
                              release and Partition.release(release), release and Partition.release(f"{release}.rl"))
                  if p]
    commits = []
    for part in partitions:
        try:
            commits += lake.committed_stages(part)
        except FileNotFoundError:
            continue
    return assign_stages([r for r in results if "started" in r], commits)


def assign_stages(runs: list[dict], commits: list) -> list[dict]:
    """Each committed stage run under the one DAG run it began in (``runs``: dag, seconds, started, ended)."""
    by_dag: dict[int, list[dict]] = {i: [] for i in range(len(runs))}
    for commit in commits:
        s = commit.stats
        begun, slack = stage_start(s["started_at"], commit.attempt)
        # The run it belongs to: the last one started by then (one DAG's stage can begin in the same second
        # as the previous DAG ended, so the first match would count it twice).
        owner = max((i for i, r in enumerate(runs) if r["started"] - slack <= begun <= r["ended"]), default=None,
                    key=lambda i: runs[i]["started"])
        if owner is None:
            continue
        fixed = s.get("fixed_costs") or {}
        wall = s.get("wall_seconds") or s["seconds"]
        by_dag[owner].append({"stage": commit.stage, "partition": commit.partition.prefix, "wall": round(wall, 1),
                              "fixed": {k: round(v, 1) for k, v in fixed.items()},
                              "work": round(wall - sum(fixed.values()), 1), "begun": begun})
    rows = []
    for i, r in enumerate(runs):
        stages = sorted(by_dag[i], key=lambda x: x["begun"])
        rows.append({"dag": r["dag"], "seconds": r["seconds"], "stages": stages,
                     "outside_stages": round(r["seconds"] - sum(x["wall"] for x in stages), 1)})
    return rows


def stage_start(started_at: str, attempt: str) -> tuple[float, float]:
    """When a stage run began and how far before that it may really have begun: its attempt id's time, to the
    microsecond, when that falls in ``started_at``'s second (which has whole seconds); a resumed attempt keeps an
    older id, so then ``started_at`` itself, up to a second early."""
    from datetime import datetime

    from lake.stage import attempt_created_at

    begun = datetime.fromisoformat(started_at).timestamp()
    created = attempt_created_at(attempt)
    precise = created.timestamp() if created is not None else None
    return (precise, 0.0) if precise is not None and begun <= precise < begun + 1 else (begun, 1.0)


def timing_table(rows: list[dict]) -> str:
    """The breakdown as text: per DAG its wall time, per stage its wall time, fixed costs and work."""
    lines = ["Time per stage (wall = stage process start to commit; fixed = start-up, Spark session, model and "
             "engine loads; outside = Airflow task runs, process exits, and stages that committed nothing new):",
             f"  {'DAG / stage':<28} {'wall':>7} {'fixed':>7} {'work':>7}  fixed costs"]
    totals = {"wall": 0.0, "fixed": 0.0, "work": 0.0, "dag": 0.0, "outside": 0.0}
    for row in rows:
        lines.append(f"  {row['dag']:<28} {row['seconds']:>7.1f}")
        totals["dag"] += row["seconds"]
        totals["outside"] += row["outside_stages"]
        for st in row["stages"]:
            fixed = sum(st["fixed"].values())
            totals["wall"] += st["wall"]
            totals["fixed"] += fixed
            totals["work"] += st["work"]
            detail = ", ".join(f"{k} {v:.1f}" for k, v in st["fixed"].items() if v >= 0.05) or "-"
            lines.append(f"    {st['stage']:<26} {st['wall']:>7.1f} {fixed:>7.1f} {st['work']:>7.1f}  {detail}")
        if row["stages"]:
            lines.append(f"    {'(outside stages)':<26} {row['outside_stages']:>7.1f}")
    lines.append(f"  {'all DAGs':<28} {totals['dag']:>7.1f}   stages: wall {totals['wall']:.1f}, fixed "
                 f"{totals['fixed']:.1f}, work {totals['work']:.1f}; outside stages {totals['outside']:.1f}")
    return "\n".join(lines)


def stage_lines(lake, partition) -> list[str]:
    lines = []
    for commit in lake.committed_stages(partition):
        s = commit.stats
        drops = ", ".join(f"{k}={v:,}" for k, v in s["drop_reasons"].items() if v) or "-"
        lines.append(f"  {commit.stage:<15} {s['records_in']:>8,} in -> {s['records_out']:>8,} out  "
                     f"{s['seconds']:>7.1f}s  drops: {drops}")
        lines.append(f"  {'':<15} output: {lake.storage.uri(commit.prefix)}")
        lines.append(f"  {'':<15} stats:  {lake.stats_uri(partition, commit.stage)}")
    return lines


def summary(snapshot: str | None, release: str | None, scorer: str | None) -> str:
    from lake import release as rel
    from lake.config import load_config
    from lake.stage import Partition

    lake = load_config().open_lake()
    lines = []
    if snapshot:
        lines += [f"Snapshot {snapshot!r} in lake {lake.root}:", *stage_lines(lake, snapshot)]
    if scorer and lake.commit_info(Partition.scorer(scorer), "train_scorer") is not None:
        metrics = lake.stats(Partition.scorer(scorer), "train_scorer")["metrics"]
        lines.append(f"Scorer {scorer!r}: held-out MAE {metrics['mae_heldout']} (0-10 scale), threshold "
                     f"{metrics['threshold']}, base {metrics['base_model']}, labels by {metrics['oracle']}")
        lines.append(f"  {'':<15} model:  {lake.storage.uri(lake.require(Partition.scorer(scorer), 'train_scorer').prefix)}/model")
    if release and release in rel.committed(lake):
        part = Partition.release(release)
        lines += [f"Release {release!r} (manifest {rel.manifest_uri(lake, release)}):",
                  *("  " + line for line in rel.read_manifest(lake, release).to_json().splitlines()),
                  *stage_lines(lake, part)]
        if lake.commit_info(part, "dataset_build") is not None:
            tokens = lake.stats(part, "dataset_build")["metrics"]["tokens_per_source"]
            lines.append(f"  shards: {lake.storage.uri(lake.require(part, 'dataset_build').prefix)} "
                         f"(tokens per source: {json.dumps(tokens)})")
        if (model := rel.model_uri(lake, release)) is not None:
            lines.append(f"  model:  {model}")
        lines += evaluation_lines(lake, part)
        rl = Partition.release(f"{release}.rl")
        if lake.committed_stages(rl):
            lines += ["", f"RL of release {release!r} (partition {rl.prefix}):", *stage_lines(lake, rl)]
            for commit in lake.committed_stages(rl):
                if commit.stage.startswith("rl_round_"):
                    m = commit.stats["metrics"]
                    lines.append(f"  {commit.stage}: {m['steps']} steps, mean reward {m['reward_first']:.3f} (step 1) -> "
                                 f"{m['reward_last']:.3f} (last), policy {m['export']}")
            lines += evaluation_lines(lake, rl)
    return "\n".join(lines)


def evaluation_lines(lake, part) -> list[str]:
    evaluation = lake.commit_info(part, "evaluate")
    if evaluation is None or f"{evaluation.prefix}/report/results.md" not in evaluation.datasets.get("report", []):
        return []
    return ["", lake.storage.read_bytes(f"{evaluation.prefix}/report/results.md").decode().rstrip(),
            f"(plot: {lake.storage.uri(evaluation.prefix + '/report/results.svg')})"]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--snapshot", default=None, help="snapshot id of the snapshot DAGs (default: demo)")
    parser.add_argument("--release", default=None, help="release name of the release DAGs (default: the snapshot's)")
    parser.add_argument("--release-snapshots", default=None,
                        help="comma-separated snapshots of the release cut (default: the snapshot)")
    parser.add_argument("--base-release", default=None, help="the release the cut continues (default: none)")
    parser.add_argument("--tokenizer", choices=["train", "pin"], default="train", help="the cut's tokenizer policy")
    parser.add_argument("--scorer-version", default=None,
                        help="scorer version to train if missing and score with (default: stages.score.scorer_version)")
    parser.add_argument("--scorer-base", default=None,
                        help="base model of a new scorer version: a path or release:<name> (default: config)")
    parser.add_argument("--scorer-labels-from", default=None,
                        help="a new scorer version reuses this version's labels (default: label the snapshot)")
    parser.add_argument("--oracle", default=None,
                        help="oracle of a new scorer version: rules, vllm, openai or release:<name> (default: config)")
    parser.add_argument("--dags", default=None, help=f"comma-separated DAG ids (default: those of {CHAIN} present; "
                                                     f"only the release ones when --release is given alone)")
    parser.add_argument("--airflow-home", default=str(REPO / ".airflow"), help="AIRFLOW_HOME (SQLite DB inside)")
    parser.add_argument("--summary-only", action="store_true", help="only print what is committed")
    parser.add_argument("--timing-json", default=None,
                        help="where to write the per-stage time breakdown (default: .work/pipeline-timing.json)")
    parser.add_argument("--cold-spark", action="store_true",
                        help="start a process (JVM, Spark session) per Spark stage instead of one warm driver for "
                             "the chain (spark_jobs/warm_driver.py; local profile)")
    args = parser.parse_args(argv)
    if args.snapshot is None and args.release is None:
        args.snapshot = "demo"
    args.release = args.release or args.snapshot
    setup_airflow_env(Path(args.airflow_home).resolve())
    chain = CHAIN if args.snapshot else RELEASE_DAGS
    dag_ids = args.dags.split(",") if args.dags else [d for d in chain if (REPO / "dags" / f"{d}.py").exists()]
    if args.snapshot is None and set(dag_ids) & set(SNAPSHOT_DAGS):
        parser.error(f"DAGs {sorted(set(dag_ids) & set(SNAPSHOT_DAGS))} run on a snapshot: give --snapshot")
    results, warm = [], {}
    if not args.summary_only:
        migrate()
        with warm_spark(not args.cold_spark) as warm:
            results = run_dags(args, dag_ids)
    print()
    for r in results:
        print(f"DAG {r['dag']:<10} {r['state']:<8} {r['seconds']:>7.1f}s")
    scorer = args.scorer_version or (pinned_scorer() if args.snapshot else None)
    timing_path = Path(args.timing_json) if args.timing_json else REPO / ".work" / "pipeline-timing.json"
    if results:
        timing_path.parent.mkdir(parents=True, exist_ok=True)
        timing_path.write_text(json.dumps({
            "dags": timing_rows(results, args.snapshot, args.release, scorer), "warm_spark": warm,
            "total_seconds": round(sum(r["seconds"] for r in results) + warm.get("start_seconds", 0.0), 1)},
            indent=2) + "\n")
    if results or (args.summary_only and args.timing_json and timing_path.exists()):
        saved = json.loads(timing_path.read_text())
        print(timing_table(saved["dags"]))
        if (saved.get("warm_spark") or {}).get("used"):
            print(f"  (the warm Spark driver started once, in {saved['warm_spark']['start_seconds']}s, before the "
                  f"first DAG)")
        print(f"  (chain total {saved['total_seconds']}s; as JSON: {timing_path})")
        print()
    print(summary(args.snapshot, args.release, scorer))
    return 0


if __name__ == "__main__":
    sys.exit(main())
