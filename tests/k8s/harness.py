"""Run the pipeline's DAGs on the k8s profile with ``dag.test()``, up to the point where they would talk to a cluster.

Airflow runs the DAG for real: a run created as the scheduler creates it (a manual run with a ``snapshot`` conf,
or an asset-triggered run consuming the upstream DAG's Asset event), the ``snapshot`` task, XCom, template
rendering and our operators' own ``execute``. Only the provider operators' cluster calls are replaced:

- ``SparkSubmitOperator.execute``: the spark-submit command its hook builds;
- ``KubernetesPodOperator.execute``: the pod ``build_pod_request_obj`` makes (what it would create);
- ``KubernetesJobOperator.execute``: the Job ``build_job_request_obj`` makes;
- ``KubernetesHook.core_v1_client``: a recorder of the Services our operators create.

Each becomes a :class:`Launched` handed to a callback: the tests only look at it; scripts/image_smoke.py runs
it in the stage's image. Airflow must be configured (AIRFLOW_HOME, database) and ``SEEDCODER_PROFILE=k8s`` set
before this module is imported, as for any DAG run.
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from unittest import mock

REPO = Path(__file__).resolve().parents[2]


@dataclass
class Launched:
    """One thing a task asked the cluster for, rendered from the task's real run context."""

    kind: str               # "spark" (spark-submit argv), "pod", "job", "service" (Kubernetes objects as dicts)
    dag_id: str
    task_id: str
    spec: Any
    result: Any = None      # what the callback returned (the smoke: the container's exit and timing)


@dataclass
class ClusterStandIn:
    """The replaced cluster calls; ``run`` decides what happens to each launch (default: recorded only)."""

    run: Callable[[Launched], Any] | None = None
    launched: list[Launched] = field(default_factory=list)

    def _launch(self, kind: str, op, spec) -> Launched:
        item = Launched(kind, op.dag_id if op else "", op.task_id if op else spec["metadata"]["name"], spec)
        self.launched.append(item)
        if self.run is not None:
            item.result = self.run(item)
        return item

    @contextlib.contextmanager
    def patched(self) -> Iterator[ClusterStandIn]:
        from airflow.providers.apache.spark.operators.spark_submit import SparkSubmitOperator
        from airflow.providers.cncf.kubernetes.hooks.kubernetes import KubernetesHook
        from airflow.providers.cncf.kubernetes.operators.job import KubernetesJobOperator
        from airflow.providers.cncf.kubernetes.operators.pod import KubernetesPodOperator
        from kubernetes.client import ApiClient

        stand_in = self
        serialize = ApiClient().sanitize_for_serialization

        def spark_execute(op, context):
            hook = op._get_hook()
            stand_in._launch("spark", op, hook._build_spark_submit_command(op.application))

        def pod_execute(op, context):
            stand_in._launch("pod", op, serialize(op.build_pod_request_obj(context)))

        def job_execute(op, context):
            stand_in._launch("job", op, serialize(op.build_job_request_obj(context)))

        class ServiceRecorder:
            def create_namespaced_service(self, namespace: str, body: dict):
                stand_in._launch("service", None, body)
                return body

        with contextlib.ExitStack() as stack:
            stack.enter_context(mock.patch.object(SparkSubmitOperator, "execute", spark_execute))
            stack.enter_context(mock.patch.object(KubernetesPodOperator, "execute", pod_execute))
            stack.enter_context(mock.patch.object(KubernetesJobOperator, "execute", job_execute))
            # No cluster: pod labels say Airflow runs outside one, and Services go to the recorder.
            stack.enter_context(mock.patch.object(KubernetesHook, "is_in_cluster", property(lambda self: False)))
            stack.enter_context(mock.patch.object(KubernetesHook, "core_v1_client",
                                                  property(lambda self: ServiceRecorder())))
            if self.run is None:
                # Recorded only: nothing ran, so there is no commit for the operators to read back (the smoke's
                # ``run`` executes each launch in its image, and the operators read the real commit).
                from stage_operators import CommittedStatsMixin

                def launched_only(op, context, *, push):
                    return {"stage": op.stage, op.partition: op.ids, "launched_only": True}

                stack.enter_context(mock.patch.object(CommittedStatsMixin, "committed_stats", launched_only))
            yield self


def dagbag():
    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(dag_folder=str(REPO / "dags"))
    if bag.import_errors:
        raise RuntimeError(f"DAG import errors: {json.dumps(bag.import_errors, indent=2)}")
    return bag


def migrate() -> None:
    from airflow.utils.db import initdb

    initdb()


def sync_dags() -> None:
    """Write every DAG of the configured bundles (and the Assets they name) to the metadata DB, as the dag-processor
    does, so an Asset event can be recorded before any run has synced its DAG (``dag.test()`` syncs as it starts)."""
    from airflow import settings
    from airflow.dag_processing.bundles.manager import DagBundlesManager
    from airflow.dag_processing.dagbag import BundleDagBag, sync_bag_to_db

    manager = DagBundlesManager()
    with settings.Session() as session:
        manager.sync_bundles_to_db(session=session)
        session.commit()
    for bundle in manager.get_all_dag_bundles():
        if not bundle.is_initialized:
            bundle.initialize()
        sync_bag_to_db(BundleDagBag(dag_folder=bundle.path, bundle_path=bundle.path, bundle_name=bundle.name),
                       bundle.name, bundle.version)


def latest_asset_events(dag) -> list:
    """The newest event of each Asset ``dag`` is scheduled on (what the scheduler would hand its next run)."""
    from airflow import settings
    from airflow.models.asset import AssetEvent, AssetModel
    from sqlalchemy import select

    def asset_uris(condition) -> list[str]:  # an Asset, or AssetAll/AssetAny of conditions
        return [u for o in condition.objects for u in asset_uris(o)] if hasattr(condition, "objects") else [
            condition.uri]

    condition = getattr(dag.timetable, "asset_condition", None)
    uris = asset_uris(condition) if condition is not None else []
    if not uris:
        raise ValueError(f"DAG {dag.dag_id} is not scheduled on Assets")
    with settings.Session() as session:
        events = []
        for uri in uris:
            event = session.scalar(select(AssetEvent).join(AssetModel, AssetEvent.asset_id == AssetModel.id)
                                   .where(AssetModel.uri == uri).order_by(AssetEvent.id.desc()).limit(1))
            if event is None:
                raise LookupError(f"no event of Asset {uri} yet: run the DAG that produces it first")
            events.append(event.id)
        return events


def add_asset_event(uri: str, extra: dict) -> int:
    """Record an event of the Asset ``uri`` (as a finished producer task would); returns its id."""
    from airflow import settings
    from airflow.models.asset import AssetEvent, AssetModel
    from sqlalchemy import select

    with settings.Session() as session:
        asset = session.scalar(select(AssetModel).where(AssetModel.uri == uri))
        if asset is None:
            raise LookupError(f"Asset {uri} is unknown to Airflow (were the DAGs synced?)")
        event = AssetEvent(asset_id=asset.id, extra=extra)
        session.add(event)
        session.commit()
        return event.id


@contextlib.contextmanager
def asset_triggered(event_ids: list[int]) -> Iterator[None]:
    """Make ``dag.test()`` create its run as the scheduler creates an asset-triggered run: no logical date, no
    data interval, run type ASSET_TRIGGERED, the given Asset events as its consumed events."""
    from airflow.models import dagrun as dagrun_module
    from airflow.models.asset import AssetEvent
    from airflow.models.dagrun import DagRun
    from airflow.utils.state import DagRunState
    from airflow.utils.types import DagRunTriggeredByType, DagRunType
    from sqlalchemy import select

    def create(*, dag, run_after, start_date, session, **_ignored):
        run = dag.create_dagrun(
            run_id=DagRun.generate_run_id(run_type=DagRunType.ASSET_TRIGGERED, logical_date=None,
                                          run_after=run_after),
            logical_date=None, data_interval=None, run_after=run_after, run_type=DagRunType.ASSET_TRIGGERED,
            triggered_by=DagRunTriggeredByType.ASSET, state=DagRunState.RUNNING, start_date=start_date,
            session=session)
        run.consumed_asset_events.extend(session.scalars(select(AssetEvent).where(AssetEvent.id.in_(event_ids))))
        session.flush()
        return run

    with mock.patch.object(dagrun_module, "get_or_create_dagrun", create):
        yield


def run_dag(dag_id: str, *, conf: dict | None = None, asset_events: list[int] | None = None,
            mark_success_pattern: str | None = None, retries: int | None = None):
    """One run of ``dag_id``: manual with ``conf``, or asset-triggered by ``asset_events``; ``retries`` overrides
    the tasks' own (a smoke fails at the first error). Returns the DagRun."""
    dag = dagbag().dags.get(dag_id)
    if dag is None:
        raise LookupError(f"no DAG {dag_id!r}")
    if retries is not None:
        for task in dag.tasks:
            task.retries = retries
    if asset_events is None:
        return dag.test(run_conf=conf, mark_success_pattern=mark_success_pattern)
    with asset_triggered(asset_events):
        return dag.test(logical_date=None, mark_success_pattern=mark_success_pattern)


def run_state(dag_run) -> str:
    return str(getattr(dag_run, "state", "unknown")).rsplit(".", 1)[-1].lower()


def configure_airflow(home: Path) -> None:
    """A private Airflow home with SQLite, this repository's dags/ and plugins/ (before Airflow is imported)."""
    home.mkdir(parents=True, exist_ok=True)
    os.environ["AIRFLOW_HOME"] = str(home)
    os.environ["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"] = f"sqlite:///{home}/airflow.db"
    os.environ["AIRFLOW__CORE__DAGS_FOLDER"] = str(REPO / "dags")
    os.environ["AIRFLOW__CORE__PLUGINS_FOLDER"] = str(REPO / "plugins")
    os.environ["AIRFLOW__CORE__LOAD_EXAMPLES"] = "False"
    os.environ["AIRFLOW__CORE__UNIT_TEST_MODE"] = "False"
    import sys

    for path in (REPO / "plugins", REPO / "dags", REPO):
        if str(path) not in sys.path:
            sys.path.insert(0, str(path))


def main(argv: list[str] | None = None) -> int:
    """``python -m tests.k8s.harness --home DIR --run crawl:'{"snapshot": "2026-10"}' --run pretrain@URI:'{...}'``

    Each ``--run DAG:CONF`` is a manual run; ``--run DAG@ASSET_URI:EXTRA`` first records an event of the Asset with
    that extra, then runs the DAG as triggered by it. Tasks matching ``--mark-success`` are marked, not run. The
    launches (and each run's state) are written to ``--out`` as JSON.
    """
    import argparse

    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("--home", required=True, type=Path, help="AIRFLOW_HOME (SQLite inside)")
    parser.add_argument("--run", action="append", default=[], help="DAG:CONF or DAG@ASSET_URI:EXTRA (JSON)")
    parser.add_argument("--mark-success", default=None, help="regex of task ids to mark success, not run")
    parser.add_argument("--out", required=True, type=Path)
    args = parser.parse_args(argv)
    configure_airflow(args.home)
    migrate()
    sync_dags()
    stand_in = ClusterStandIn()
    runs = []
    with stand_in.patched():
        for spec in args.run:
            brace = spec.find("{")
            target, payload = (spec, "{}") if brace < 0 else (spec[:brace].rstrip(":"), spec[brace:])
            dag_id, _, asset = target.partition("@")
            body = json.loads(payload)
            if asset:
                run = run_dag(dag_id, asset_events=[add_asset_event(asset, body)],
                              mark_success_pattern=args.mark_success)
            else:
                run = run_dag(dag_id, conf=body, mark_success_pattern=args.mark_success)
            runs.append({"dag": dag_id, "state": run_state(run), "run_type": str(run.run_type)})
    args.out.write_text(json.dumps({"runs": runs, "launched": [
        {"kind": item.kind, "dag_id": item.dag_id, "task_id": item.task_id, "spec": item.spec}
        for item in stand_in.launched]}, indent=1, default=str))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
