"""On the k8s profile the Spark, pod and Job operators return the committed stats when the job ends.

The lake is the k8s profile's (config/k8s.yaml) on a real S3 server (`weed mini`). No cluster runs here, so the
provider's own part (waiting for the pod, Job or driver) is replaced by its outcome: returning (the job ended
well) or raising (it failed). What runs for real is ours: the templates rendered from a run context, then the
read-back of the commit pointer from S3 and the XCom push.
"""

from __future__ import annotations

import pendulum
import pytest
from airflow.exceptions import AirflowException
from airflow.providers.apache.spark.operators.spark_submit import SparkSubmitOperator
from airflow.providers.cncf.kubernetes.operators.job import KubernetesJobOperator
from airflow.providers.cncf.kubernetes.operators.pod import KubernetesPodOperator
from airflow.sdk import DAG
from distributed_launch import distributed_stage_tasks
from stage_launcher import PodResources, stage_task
from stage_operators import StagePodOperator, StageSparkSubmitOperator

from lake.stage import Lake, Partition, StageNotCommitted, StageRun
from tests.lake.test_storage_s3 import s3_server  # noqa: F401  (a real `weed mini` for this module)

pytestmark = pytest.mark.s3
SNAPSHOT = "2026-10"
IDS = {"snapshot": SNAPSHOT, "release": "2026-q4", "scorer": "v2"}  # what each resolver task returned


class RunContextTI:
    """The task instance a run context carries: the resolver XComs to pull, and what the operator pushes."""

    def __init__(self, task_id: str):
        self.dag_id, self.task_id, self.map_index, self.try_number = "k8s_stats", task_id, -1, 1
        self.pushed: dict[str, object] = {}

    def xcom_pull(self, task_ids=None, **_kw):
        return IDS.get(task_ids)

    def xcom_push(self, key, value):
        self.pushed[key] = value


@pytest.fixture
def k8s_lake(s3_server, monkeypatch):  # noqa: F811
    monkeypatch.setenv("SEEDCODER_PROFILE", "k8s")
    monkeypatch.delenv("SEEDCODER_CONFIG", raising=False)
    monkeypatch.setenv("SEEDCODER_LAKE_ROOT", "s3://lake-test/k8s-stats")
    monkeypatch.setenv("SEEDCODER_S3_ENDPOINT", s3_server)
    for var in ("SEEDCODER_S3_SECRET", "AWS_REGION"):
        monkeypatch.delenv(var, raising=False)
    from lake.config import load_config

    lake = load_config().open_lake()
    assert lake.root == "s3://lake-test/k8s-stats", "the k8s profile's config names the S3 lake"
    return lake


def commit(lake: Lake, stage: str, n_in: int, n_out: int, drops: dict, partition: str | Partition = SNAPSHOT) -> None:
    with StageRun(lake, partition, stage) as run:
        run.stats.records_in, run.stats.records_out = n_in, n_out
        for reason, n in drops.items():
            run.stats.drop(reason, n)


def rendered(make):
    with DAG("k8s_stats", schedule=None, start_date=pendulum.datetime(2026, 1, 1, tz="UTC")) as dag:
        op = make()
    ti = RunContextTI(op.task_id)
    context = {"ti": ti, "run_id": "manual__2026-10", "dag": dag, "task": op}
    op.render_template_fields(context)
    return op, context, ti


def test_a_pod_stage_returns_and_pushes_the_committed_stats(k8s_lake, monkeypatch):
    op, context, ti = rendered(lambda: stage_task("score", runtime="gpu", module="training.quality.score",
                                                  resources=PodResources(gpus=1)))
    assert isinstance(op, StagePodOperator) and op.ids == SNAPSHOT and op.deferrable
    commit(k8s_lake, "score", 757, 757, {})
    monkeypatch.setattr(KubernetesPodOperator, "trigger_reentry", lambda self, context, event: None)
    summary = op.trigger_reentry(context, {"status": "success", "name": "seedcoder-score-x", "namespace": "ns"})
    assert summary["records_in"] == summary["records_out"] == 757
    assert summary["attempt"] == k8s_lake.require(SNAPSHOT, "score").attempt
    assert summary["uri"].startswith("s3://lake-test/k8s-stats/snapshot=2026-10/score/attempt=")
    assert ti.pushed == {"return_value": summary}, "the KPO does not push return values: we push the stats"


def test_a_failed_pod_reads_nothing_and_a_pod_that_committed_nothing_fails(k8s_lake, monkeypatch):
    op, context, ti = rendered(lambda: stage_task("oracle_label", runtime="gpu", partition="scorer",
                                                  module="training.quality.oracle_label"))
    assert (op.partition, op.ids) == ("scorer", IDS["scorer"])

    def pod_failed(self, context, event):
        raise AirflowException("Pod seedcoder-oracle-label-x returned a failure")

    monkeypatch.setattr(KubernetesPodOperator, "trigger_reentry", pod_failed)
    with pytest.raises(AirflowException, match="returned a failure"):
        op.trigger_reentry(context, {"status": "failed", "name": "x", "namespace": "ns"})
    monkeypatch.setattr(KubernetesPodOperator, "trigger_reentry", lambda self, context, event: None)
    with pytest.raises(StageNotCommitted, match="oracle_label"):
        op.trigger_reentry(context, {"status": "success", "name": "x", "namespace": "ns"})
    assert ti.pushed == {}


def test_a_spark_stage_returns_the_committed_stats(k8s_lake, monkeypatch):
    op, context, _ = rendered(lambda: stage_task("exact_dedup", module="spark_jobs.exact_dedup"))
    assert isinstance(op, StageSparkSubmitOperator) and op.ids == SNAPSHOT
    assert op.application_args == ["spark_jobs.exact_dedup", "--snapshot", SNAPSHOT]
    commit(k8s_lake, "exact_dedup", 1000, 880, {"exact_duplicate_repo": 80, "exact_duplicate_file": 40})
    monkeypatch.setattr(SparkSubmitOperator, "execute", lambda self, context: None)
    summary = op.execute(context)
    assert summary["records_out"] == 880
    assert summary["drop_reasons"] == {"exact_duplicate_file": 40, "exact_duplicate_repo": 80}
    assert op.do_xcom_push, "the runner pushes a SparkSubmitOperator's return value"


def test_a_multi_node_job_returns_the_committed_stats(k8s_lake, monkeypatch):
    from distributed_job import DistributedJobOperator

    op, context, ti = rendered(lambda: distributed_stage_tasks("pretrain", module="training.pretrain",
                                                               partition="release")[1])
    assert isinstance(op, DistributedJobOperator) and (op.partition, op.ids) == ("release", IDS["release"])
    commit(k8s_lake, "pretrain", 300, 300, {}, Partition.release(IDS["release"]))
    monkeypatch.setattr(KubernetesJobOperator, "execute_complete", lambda self, context, event, **kw: None)
    summary = op.execute_complete(context, {"status": "success"})
    assert summary["records_in"] == 300 and ti.pushed["return_value"] == summary
    assert summary["release"] == IDS["release"] and "/release=2026-q4/pretrain/attempt=" in summary["uri"]
