"""The k8s profile's stage operators: the providers' Spark / pod / Job operators, plus the committed stats.

When the Spark job, the pod or the Indexed Job has ended successfully, each reads the stage's committed
``_SUCCESS`` pointer from the lake and returns its stats (records in and out, drop reasons, seconds, the
attempt's URI) as the task's XCom, exactly what :class:`stage_launcher.LocalStageOperator` returns on the local
profile. The pipeline's ``publish`` tasks put the same numbers in the Asset events, so the UI, XCom and the Asset
events carry numbers on both profiles (the Indexed Job of a multi-node stage is
``distributed_job.DistributedJobOperator``, on the same mixin). The providers are imported here, not in
``stage_launcher``, so a DAG file on the local profile never pays for them (``plugins/.airflowignore`` keeps Airflow from loading this file as a
plugin).
"""

from __future__ import annotations

from typing import Any

from airflow.providers.apache.spark.operators.spark_submit import SparkSubmitOperator
from airflow.providers.cncf.kubernetes.operators.pod import KubernetesPodOperator
from stage_launcher import PartitionKind, committed_summary, partition_xcom

XCOM_RETURN_KEY = "return_value"


class CommittedStatsMixin:
    """Reads back what the stage committed once the job has ended (a missing commit fails the task)."""

    stage: str
    partition: PartitionKind
    ids: str

    def _stage_init(self, stage: str, partition: PartitionKind, ids: str | None) -> None:
        self.stage, self.partition = stage, partition
        # The partition ids the job processed (comma-separated; default: what the run's resolver task returned).
        self.ids = ids or partition_xcom(partition)

    def committed_stats(self, context: Any, *, push: bool) -> dict:
        summary = committed_summary(self.ids, self.stage, self.partition)
        self.log.info("stage %s (%s %s) committed attempt %s: %s in, %s out, drops %s, %.1f s",  # type: ignore[attr-defined]
                      self.stage, self.partition, self.ids, summary["attempt"], summary["records_in"],
                      summary["records_out"], summary["drop_reasons"], summary["seconds"] or 0.0)
        if push:
            # These providers use do_xcom_push for their sidecar, so the return value is not pushed for us.
            context["ti"].xcom_push(key=XCOM_RETURN_KEY, value=summary)
        return summary


class StageSparkSubmitOperator(CommittedStatsMixin, SparkSubmitOperator):
    """spark-submit of a stage (cluster mode on Kubernetes); returns the committed stats."""

    template_fields = (*SparkSubmitOperator.template_fields, "ids")

    def __init__(self, *, stage: str, partition: PartitionKind = "snapshot", ids: str | None = None, **kwargs: Any):
        super().__init__(**kwargs)
        self._stage_init(stage, partition, ids)

    def execute(self, context: Any) -> dict:
        super().execute(context)
        return self.committed_stats(context, push=False)


class StagePodOperator(CommittedStatsMixin, KubernetesPodOperator):
    """A stage's pod (deferrable); on the way out of the pod, the committed stats become the task's XCom."""

    template_fields = (*KubernetesPodOperator.template_fields, "ids")

    def __init__(self, *, stage: str, partition: PartitionKind = "snapshot", ids: str | None = None, **kwargs: Any):
        super().__init__(**kwargs)
        self._stage_init(stage, partition, ids)

    def execute(self, context: Any) -> dict:
        super().execute(context)  # deferrable: raises TaskDeferred; the task resumes in trigger_reentry
        return self.committed_stats(context, push=not self.do_xcom_push)

    def trigger_reentry(self, context: Any, event: dict[str, Any]) -> dict:
        super().trigger_reentry(context, event)  # raises on a failed pod, or defers again while it runs
        return self.committed_stats(context, push=not self.do_xcom_push)
