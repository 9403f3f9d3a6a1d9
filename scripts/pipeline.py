"""Run the pipeline's DAGs end to end on one snapshot (``dag.test()``, in-process), then say where everything is.

    python scripts/pipeline.py --snapshot demo                 # every DAG of the chain, in order
    python scripts/pipeline.py --snapshot demo --dags crawl,dedup
    python scripts/pipeline.py --snapshot demo --summary-only  # just print the committed stages

This is what the README's main command runs. Each DAG is run exactly as the scheduler would run it (same tasks,
same operators, same profile), with the snapshot given as the run's ``snapshot`` param; the Asset-scheduled DAGs
are run in chain order instead of waiting on their Assets.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
CHAIN = ["crawl", "dedup", "filters", "quality", "dataset", "pretrain", "evaluate"]


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


def run_dags(snapshot: str, dag_ids: list[str]) -> list[dict]:
    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(dag_folder=str(REPO / "dags"))
    if bag.import_errors:
        raise SystemExit(f"DAG import errors: {json.dumps(bag.import_errors, indent=2)}")
    results = []
    for dag_id in dag_ids:
        dag = bag.get_dag(dag_id)
        if dag is None:
            raise SystemExit(f"no DAG {dag_id!r} in {REPO / 'dags'} (have {sorted(bag.dag_ids)})")
        t0 = time.monotonic()
        print(f"==> {dag_id} (snapshot {snapshot})", flush=True)
        dag_run = dag.test(run_conf={"snapshot": snapshot})
        state = str(getattr(dag_run, "state", "unknown"))
        results.append({"dag": dag_id, "state": state, "seconds": round(time.monotonic() - t0, 1)})
        print(f"<== {dag_id}: {state} in {results[-1]['seconds']}s", flush=True)
        if "success" not in state:
            raise SystemExit(f"DAG {dag_id} ended {state}; see the task logs above")
    return results


def summary(snapshot: str) -> str:
    from lake.config import load_config

    lake = load_config().open_lake()
    lines = [f"Snapshot {snapshot!r} in lake {lake.root}:"]
    for commit in lake.committed_stages(snapshot):
        s = commit.stats
        drops = ", ".join(f"{k}={v:,}" for k, v in s["drop_reasons"].items() if v) or "-"
        lines.append(f"  {commit.stage:<15} {s['records_in']:>8,} in -> {s['records_out']:>8,} out  "
                     f"{s['seconds']:>7.1f}s  drops: {drops}")
        lines.append(f"  {'':<15} output: {lake.storage.uri(commit.prefix)}")
        lines.append(f"  {'':<15} stats:  {lake.stats_uri(snapshot, commit.stage)}")
    evaluation = lake.commit_info(snapshot, "evaluate")
    if evaluation is not None and f"{evaluation.prefix}/report/results.md" in evaluation.datasets.get("report", []):
        lines += ["", lake.storage.read_bytes(f"{evaluation.prefix}/report/results.md").decode().rstrip(),
                  f"(plot: {lake.storage.uri(evaluation.prefix + '/report/results.svg')})"]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--snapshot", default="demo", help="snapshot id (default: demo)")
    parser.add_argument("--dags", default=None, help=f"comma-separated DAG ids (default: those of {CHAIN} present)")
    parser.add_argument("--airflow-home", default=str(REPO / ".airflow"), help="AIRFLOW_HOME (SQLite DB inside)")
    parser.add_argument("--summary-only", action="store_true", help="only print the committed stages")
    args = parser.parse_args(argv)
    setup_airflow_env(Path(args.airflow_home).resolve())
    results = []
    if not args.summary_only:
        dag_ids = args.dags.split(",") if args.dags else [d for d in CHAIN if (REPO / "dags" / f"{d}.py").exists()]
        migrate()
        results = run_dags(args.snapshot, dag_ids)
    print()
    for r in results:
        print(f"DAG {r['dag']:<10} {r['state']:<8} {r['seconds']:>7.1f}s")
    print(summary(args.snapshot))
    return 0


if __name__ == "__main__":
    sys.exit(main())
