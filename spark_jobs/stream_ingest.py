"""Streaming bronze: FHIR events into bronze within seconds, exactly once.

    python -m spark_jobs.stream_ingest --source files --landing <root> --lakehouse <root> \\
        --checkpoint <uri> --status-file <path> [--trigger-seconds 30]
    python -m spark_jobs.stream_ingest --source kafka --kafka-bootstrap <host:port> --kafka-topic <topic> ...

Sources:
- files: NDJSON files arriving in <landing>/stream/ (local path or abfss://);
- kafka: a Kafka topic, one FHIR resource or Bundle per message value. Azure Event
  Hubs is read through its Kafka endpoint: --kafka-bootstrap <namespace>.servicebus.windows.net:9093
  --kafka-sasl, with the namespace connection string in FHIR_EVENTHUB_CONNECTION_STRING
  (SASL_SSL / PLAIN, user "$ConnectionString").

Every micro-batch goes through the batch bronze transforms (spark_jobs.bronze_ingest:
the same record layout, quarantine reasons and counts) and is appended, with
ingest_mode = 'stream', to those of bronze/fhir_raw, the typed raw tables and
bronze/quarantine it has rows for (all are created empty at start, and checkpoint
their Delta log every STREAM_CHECKPOINT_INTERVAL commits), plus one row in
bronze/ingest_runs. Exactly once: the checkpoint replays an unfinished
micro-batch after a crash, and each append carries Delta's idempotent-write
options (txnAppId = the query name, txnVersion = the batch id), so a replayed
batch is not written twice.

Health: a StreamingQueryListener writes the latest progress (last batch time,
input rows, processing rate, backlog) and a heartbeat to --status-file, which
the fhir_streaming_supervisor DAG reads.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import logging
import os
import tempfile
from pathlib import Path

from delta.tables import DeltaTable
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql.streaming import StreamingQueryListener

from spark_jobs.bronze_ingest import (
    RUN_LOG_SCHEMA,
    STATS_COLUMNS,
    STREAM,
    TYPED_RAW_TABLES,
    RunLogRecord,
    bronze_records,
    bronze_tables,
    classified_records,
    hadoop_uri,
    lines_to_documents,
    utc_now,
)
from spark_jobs.lakehouse import (
    STATS_COLUMNS_PROPERTY,
    PermanentJobError,
    append,
    configure_logging,
    run_job,
    table_exists,
    table_path,
)
from spark_jobs.session import build_spark_session

log = logging.getLogger("fhir_lakehouse.stream")

EVENTHUB_SECRET_ENV = "FHIR_EVENTHUB_CONNECTION_STRING"

# Delta writes a checkpoint synchronously after every delta.checkpointInterval-th commit
# of a table (default 10). A micro-batch commits fhir_raw, a typed table and ingest_runs,
# so all three checkpointed every ~10 batches, mostly in the same batch, which then was
# the slowest and set the stream's latency p95. At 100, readers replay at most 100 small
# JSON commits.
CHECKPOINT_INTERVAL = "delta.checkpointInterval"
STREAM_CHECKPOINT_INTERVAL = 100


# --- Sources ------------------------------------------------------------------------


def file_lines(spark: SparkSession, landing: str, max_files_per_trigger: int) -> DataFrame:
    folder = f"{hadoop_uri(landing).rstrip('/')}/stream"
    return (
        spark.readStream.format("text")
        .option("maxFilesPerTrigger", max_files_per_trigger)
        .load(folder)
        .select("value", F.regexp_replace("_metadata.file_path", r"^.*/(stream/)", "$1").alias("source_file"))
    )


def kafka_options(args: argparse.Namespace) -> dict[str, str]:
    options = {
        "kafka.bootstrap.servers": args.kafka_bootstrap,
        "subscribe": args.kafka_topic,
        "startingOffsets": args.kafka_starting_offsets,
        "maxOffsetsPerTrigger": str(args.max_records_per_trigger),
        "failOnDataLoss": "true",
    }
    if args.kafka_sasl:
        secret = os.environ.get(EVENTHUB_SECRET_ENV)
        if not secret:
            raise PermanentJobError(
                f"--kafka-sasl needs the Event Hubs connection string in {EVENTHUB_SECRET_ENV}"
            )
        options.update(
            {
                "kafka.security.protocol": "SASL_SSL",
                "kafka.sasl.mechanism": "PLAIN",
                "kafka.sasl.jaas.config": (
                    "org.apache.kafka.common.security.plain.PlainLoginModule required "
                    f'username="$ConnectionString" password="{secret}";'
                ),
            }
        )
    return options


def kafka_lines(spark: SparkSession, args: argparse.Namespace) -> DataFrame:
    stream = spark.readStream.format("kafka").options(**kafka_options(args)).load()
    # cast keeps the bytes as they are, so non-UTF-8 values are still caught as such.
    return stream.select(
        F.col("value").cast("string").alias("value"),
        F.format_string("kafka:%s/%d/%d", "topic", "partition", "offset").alias("source_file"),
    )


# --- One micro-batch ----------------------------------------------------------------


def stream_records(lines: DataFrame) -> DataFrame:
    """Source lines -> classified records (spark_jobs.bronze_ingest). start() applies it
    once to the streaming frame: rebuilding this plan in every micro-batch takes
    thousands of Py4J calls, a noticeable share of each batch."""
    return classified_records(lines_to_documents(lines))


def prepare_tables(spark: SparkSession, lakehouse: str) -> None:
    """Create, empty, the bronze tables that do not exist yet, and give every bronze table
    the stream appends to STREAM_CHECKPOINT_INTERVAL. A micro-batch appends only to the
    tables it has rows for, and silver reads every typed table from the start."""
    now = utc_now()
    no_lines = spark.createDataFrame([], "value string, source_file string")
    tables = bronze_tables(bronze_records(stream_records(no_lines), now.date(), "create", now, STREAM))
    tables["ingest_runs"] = (spark.createDataFrame([], RUN_LOG_SCHEMA), [])
    interval = str(STREAM_CHECKPOINT_INTERVAL)
    for table, (rows, partition_by) in tables.items():
        path = table_path(lakehouse, "bronze", table)
        if not table_exists(spark, path):
            properties = {CHECKPOINT_INTERVAL: interval}
            if table in STATS_COLUMNS:
                properties[STATS_COLUMNS_PROPERTY] = ",".join(STATS_COLUMNS[table])
            append(rows, path, partition_by, properties=properties)
        elif DeltaTable.forPath(spark, path).detail().first().properties.get(CHECKPOINT_INTERVAL) != interval:
            spark.sql(f"ALTER TABLE delta.`{path}` SET TBLPROPERTIES ('{CHECKPOINT_INTERVAL}' = {interval})")


def write_batch(records: DataFrame, batch_id: int, lakehouse: str, query_name: str) -> dict:
    """Append one micro-batch of stream_records to bronze, idempotently per (query, batch id).

    fhir_raw is committed first, since its commit is what makes a record visible
    downstream; then only the typed and quarantine tables that get rows, then the
    ingest_runs row. Each Delta append has a fixed cost even for five rows, so the
    appends are most of a small batch's time and skipping the empty ones saves most
    of it.
    """
    spark = records.sparkSession
    now = utc_now()
    run_id = f"stream__{query_name}__{batch_id}"
    loaded = bronze_records(records, now.date(), run_id, now, STREAM).persist()
    once = (query_name, batch_id)
    try:
        tables = bronze_tables(loaded)
        fhir_raw, fhir_raw_partitions = tables.pop("fhir_raw")
        append(fhir_raw, table_path(lakehouse, "bronze", "fhir_raw"), fhir_raw_partitions, once=once)
        counts = loaded.groupBy("resource_type", "reason").count().collect()
        by_type = {r.resource_type: r["count"] for r in counts if r.reason is None}
        by_reason = {r.reason: r["count"] for r in counts if r.reason is not None}
        rows_for = {"quarantine": sum(by_reason.values())}
        rows_for.update({table: by_type.get(kind, 0) for table, kind in TYPED_RAW_TABLES.items()})
        for table, (rows, partition_by) in tables.items():
            if rows_for[table]:
                append(rows, table_path(lakehouse, "bronze", table), partition_by, once=once)
    finally:
        loaded.unpersist()
    ingested, quarantined = sum(by_type.values()), sum(by_reason.values())
    record = RunLogRecord(
        run_date=now.date(),
        run_id=run_id,
        status="streamed",
        started_at=now,
        finished_at=utc_now(),
        landing_fingerprint=query_name,
        files=0,
        bytes=0,
        records_read=ingested + quarantined,
        ingested=ingested,
        quarantined=quarantined,
        ingested_by_type=by_type,
        quarantined_by_reason=by_reason,
    )
    append(record.frame(spark), table_path(lakehouse, "bronze", "ingest_runs"), once=once)
    return {"batch_id": batch_id, "ingested": ingested, "quarantined": quarantined}


# --- Health ----------------------------------------------------------------------------


def write_status(path: Path, status: dict) -> None:
    """Replace the status file atomically (the supervisor may read it at any time)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile("w", dir=path.parent, delete=False, suffix=".tmp") as tmp:
        json.dump(status, tmp)
    os.replace(tmp.name, path)


def backlog(progress) -> int | None:
    """Records known but not yet read: Kafka's offsets behind latest; None for files."""
    for source in progress.sources:
        metrics = source.metrics or {}
        if "maxOffsetsBehindLatest" in metrics:
            return int(float(metrics["maxOffsetsBehindLatest"]))
    return None


class StatusListener(StreamingQueryListener):
    """Publishes one query's health for the supervisor (listeners see every query of the
    session, so events of other queries are ignored)."""

    def __init__(self, path: Path, query_name: str):
        super().__init__()
        self.path = path
        self.query_name = query_name
        self.query_id: str | None = None
        self.base = {"query_name": query_name, "pid": os.getpid()}
        self.last_progress: dict = {}

    def _write(self, **fields) -> None:
        heartbeat = dt.datetime.now(dt.UTC).isoformat()
        write_status(self.path, {**self.base, **self.last_progress, **fields, "heartbeat": heartbeat})

    def onQueryStarted(self, event):  # noqa: N802 (Spark's listener API)
        if event.name != self.query_name:
            return
        self.query_id = str(event.id)
        self.base["query_id"] = self.query_id
        self._write(status="running", started_at=event.timestamp)

    def onQueryProgress(self, event):  # noqa: N802
        progress = event.progress
        if str(progress.id) != self.query_id:
            return
        self.last_progress = {
            "batch_id": progress.batchId,
            "last_batch_time": progress.timestamp,
            "input_rows": progress.numInputRows,
            "input_rows_per_second": progress.inputRowsPerSecond,
            "processed_rows_per_second": progress.processedRowsPerSecond,
            "backlog": backlog(progress),
        }
        self._write(status="running")

    def onQueryIdle(self, event):  # noqa: N802
        if str(event.id) == self.query_id:
            self._write(status="running", idle=True)

    def onQueryTerminated(self, event):  # noqa: N802
        if str(event.id) == self.query_id:
            self._write(status="failed" if event.exception else "stopped", error=event.exception)


# --- Job --------------------------------------------------------------------------------


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="stream_ingest", description=__doc__.split("\n")[0])
    parser.add_argument("--source", choices=["files", "kafka"], required=True)
    parser.add_argument("--landing", help="landing root (files source): reads <landing>/stream/")
    parser.add_argument("--lakehouse", required=True)
    parser.add_argument(
        "--checkpoint", required=True, help="checkpoint location (keep it: it is the stream's state)"
    )
    parser.add_argument("--status-file", required=True, type=Path, help="where the health status is written")
    parser.add_argument("--query-name", default="fhir_stream_ingest")
    parser.add_argument(
        "--trigger-seconds", type=float, default=30.0, help="micro-batch interval (seeds: 30 s)"
    )
    parser.add_argument("--max-files-per-trigger", type=int, default=100)
    parser.add_argument("--max-records-per-trigger", type=int, default=100_000)
    parser.add_argument("--kafka-bootstrap")
    parser.add_argument("--kafka-topic")
    parser.add_argument("--kafka-starting-offsets", default="earliest")
    parser.add_argument(
        "--kafka-sasl", action="store_true", help="SASL_SSL with the Event Hubs connection string"
    )
    args = parser.parse_args(argv)
    if args.source == "files" and not args.landing:
        parser.error("--source files needs --landing")
    if args.source == "kafka" and not (args.kafka_bootstrap and args.kafka_topic):
        parser.error("--source kafka needs --kafka-bootstrap and --kafka-topic")
    return args


def start(spark: SparkSession, args: argparse.Namespace):
    """Start the streaming query (returns it; the caller waits or stops)."""
    prepare_tables(spark, args.lakehouse)
    listener = StatusListener(args.status_file, args.query_name)
    spark.streams.addListener(listener)
    lines = (
        file_lines(spark, args.landing, args.max_files_per_trigger)
        if args.source == "files"
        else kafka_lines(spark, args)
    )
    query = (
        stream_records(lines)
        .writeStream.queryName(args.query_name)
        .option("checkpointLocation", args.checkpoint)
        .trigger(processingTime=f"{round(args.trigger_seconds * 1000)} milliseconds")
        .foreachBatch(
            lambda batch, batch_id: log.info(
                "Stream batch %s", write_batch(batch, batch_id, args.lakehouse, args.query_name)
            )
        )
        .start()
    )
    log.info(
        "Streaming %s into %s/bronze every %ss (checkpoint %s)",
        args.source,
        args.lakehouse,
        args.trigger_seconds,
        args.checkpoint,
    )
    return query


def main(argv: list[str] | None = None) -> None:
    configure_logging()
    args = parse_args(argv)
    spark = build_spark_session("fhir-stream-ingest")
    start(spark, args).awaitTermination()


if __name__ == "__main__":
    run_job(main)
