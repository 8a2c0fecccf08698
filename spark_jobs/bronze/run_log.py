"""bronze/ingest_runs: one row per batch run or streamed micro-batch."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql import types as T

from spark_jobs.lakehouse import append, read_table, table_exists

RUN_LOG_SCHEMA = T.StructType(
    [
        T.StructField("run_date", T.DateType()),
        T.StructField("run_id", T.StringType()),
        T.StructField("status", T.StringType()),
        T.StructField("started_at", T.TimestampType()),
        T.StructField("finished_at", T.TimestampType()),
        T.StructField("landing_fingerprint", T.StringType()),
        T.StructField("files", T.IntegerType()),
        T.StructField("bytes", T.LongType()),
        T.StructField("records_read", T.LongType()),
        T.StructField("ingested", T.LongType()),
        T.StructField("quarantined", T.LongType()),
        T.StructField("ingested_by_type", T.MapType(T.StringType(), T.LongType())),
        T.StructField("quarantined_by_reason", T.MapType(T.StringType(), T.LongType())),
    ]
)


@dataclass(frozen=True)
class RunLogRecord:
    """One row of bronze/ingest_runs (RUN_LOG_SCHEMA), from a batch run or a stream's
    micro-batch."""

    run_date: dt.date
    run_id: str
    status: str  # ingested | unchanged (batch), streamed (stream)
    started_at: dt.datetime
    finished_at: dt.datetime
    landing_fingerprint: str | None  # a stream's: its query name
    files: int
    bytes: int
    records_read: int | None = None
    ingested: int | None = None
    quarantined: int | None = None
    ingested_by_type: dict[str, int] | None = None
    quarantined_by_reason: dict[str, int] | None = None

    def frame(self, spark: SparkSession) -> DataFrame:
        return spark.createDataFrame(
            [tuple(getattr(self, f.name) for f in RUN_LOG_SCHEMA.fields)], RUN_LOG_SCHEMA
        )


def utc_now() -> dt.datetime:
    """Now, as the naive UTC timestamp the tables hold."""
    return dt.datetime.now(dt.UTC).replace(tzinfo=None)


def previous_run_fingerprint(spark: SparkSession, runs_path: str, run_date: dt.date) -> str | None:
    if not table_exists(spark, runs_path):
        return None
    last = (
        read_table(spark, runs_path)
        .filter((F.col("run_date") == F.lit(run_date)) & (F.col("status") == "ingested"))
        .orderBy(F.col("finished_at").desc())
        .select("landing_fingerprint")
        .first()
    )
    return last.landing_fingerprint if last else None


def append_batch_run(
    spark: SparkSession,
    path: str,
    *,
    run_date: dt.date,
    run_id: str,
    started: dt.datetime,
    fingerprint: str,
    files: list,
    counts: dict | None,
    status: str,
) -> None:
    """The run-log row of one batch run (files are landing.LandingFile)."""
    counts = counts or {}
    record = RunLogRecord(
        run_date=run_date,
        run_id=run_id,
        status=status,
        started_at=started,
        finished_at=utc_now(),
        landing_fingerprint=fingerprint,
        files=len(files),
        bytes=sum(f.size for f in files),
        records_read=counts.get("read"),
        ingested=counts.get("ingested"),
        quarantined=counts.get("quarantined"),
        ingested_by_type=counts.get("ingested_by_type"),
        quarantined_by_reason=counts.get("quarantined_by_reason"),
    )
    append(record.frame(spark), path)
