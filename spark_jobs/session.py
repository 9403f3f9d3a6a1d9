"""One way to get a SparkSession, configured from the profile (local[2] here, Kubernetes in production)."""

from __future__ import annotations

import os
import sys

from lake.config import PlatformConfig
from lake.timing import fixed_cost
from spark_jobs.progress import start_progress


def spark_session(cfg: PlatformConfig, app_name: str):
    """The active session if spark-submit made one, else a new one from ``cfg.spark``."""
    from pyspark.sql import SparkSession

    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    os.environ.setdefault("PYSPARK_DRIVER_PYTHON", sys.executable)
    active = SparkSession.getActiveSession()
    if active is not None:
        return active
    builder = (
        SparkSession.builder.appName(app_name)
        .config("spark.sql.shuffle.partitions", str(cfg.spark.shuffle_partitions))
        .config("spark.sql.session.timeZone", "UTC")
        .config("spark.sql.execution.arrow.pyspark.enabled", "true")
        .config("spark.ui.showConsoleProgress", "false")
        .config("spark.sql.parquet.compression.codec", "zstd")
        # Timestamps as UTC microseconds: read back with the lake schemas' type (INT96 would come back zone-less ns).
        .config("spark.sql.parquet.outputTimestampType", "TIMESTAMP_MICROS")
        # Parquet files carry no writer timestamps; keep Spark from adding per-run metadata either.
        .config("spark.sql.sources.commitProtocolClass",
                "org.apache.spark.sql.execution.datasources.SQLHadoopMapReduceCommitProtocol")
        .config("spark.hadoop.mapreduce.fileoutputcommitter.marksuccessfuljobs", "false")
    )
    if "PYSPARK_GATEWAY_PORT" not in os.environ:  # set when spark-submit launched us
        builder = builder.master(cfg.spark.master).config("spark.driver.memory", cfg.spark.driver_memory)
    for key, value in cfg.spark.conf.items():
        builder = builder.config(key, value)
    with fixed_cost("spark_session"):
        spark = builder.getOrCreate()
    spark.sparkContext.setLogLevel(os.environ.get("SPARK_LOG_LEVEL", "WARN"))
    start_progress(spark, app_name)
    return spark
