"""Streaming bronze: micro-batches of FHIR events through the batch's bronze
transforms into the bronze tables, exactly once (see spark_jobs/stream_ingest.py)."""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path

from delta.tables import DeltaTable
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from fhir_contract import table_path
from spark_jobs.bronze.landing import hadoop_uri
from spark_jobs.bronze.records import STREAM, bronze_records, classified_records, lines_to_documents
from spark_jobs.bronze.run_log import RUN_LOG_SCHEMA, RunLogRecord, utc_now
from spark_jobs.bronze.stream_health import StatusListener
from spark_jobs.bronze.tables import STATS_COLUMNS, TYPED_RAW_TABLES, bronze_tables
from spark_jobs.lakehouse import STATS_COLUMNS_PROPERTY, PermanentJobError, append, table_exists

log = logging.getLogger("fhir_lakehouse.stream")

EVENTHUB_SECRET_ENV = "FHIR_EVENTHUB_CONNECTION_STRING"

# Delta writes a checkpoint synchronously after every delta.checkpointInterval-th commit
# of a table (default 10). A micro-batch commits fhir_raw, a typed table and ingest_runs,
# so all three checkpointed every ~10 batches, mostly in the same batch, which then was
# the slowest and set the stream's latency p95. At 100, readers replay at most 100 small
# JSON commits.
CHECKPOINT_INTERVAL = "delta.checkpointInterval"
STREAM_CHECKPOINT_INTERVAL = 100


@dataclass(frozen=True)
class StreamOptions:
    """What one streaming query reads, where it writes, and how often (see
    spark_jobs/stream_ingest.py for each option's meaning)."""

    source: str  # files | kafka
    lakehouse: str
    checkpoint: str
    status_file: Path
    landing: str | None = None
    query_name: str = "fhir_stream_ingest"
    trigger_seconds: float = 30.0
    max_files_per_trigger: int = 100
    max_records_per_trigger: int = 100_000
    kafka_bootstrap: str | None = None
    kafka_topic: str | None = None
    kafka_starting_offsets: str = "earliest"
    kafka_sasl: bool = False


def file_lines(spark: SparkSession, landing: str, max_files_per_trigger: int) -> DataFrame:
    folder = f"{hadoop_uri(landing).rstrip('/')}/stream"
    return (
        spark.readStream.format("text")
        .option("maxFilesPerTrigger", max_files_per_trigger)
        .load(folder)
        .select("value", F.regexp_replace("_metadata.file_path", r"^.*/(stream/)", "$1").alias("source_file"))
    )


def kafka_options(options: StreamOptions) -> dict[str, str]:
    kafka = {
        "kafka.bootstrap.servers": options.kafka_bootstrap,
        "subscribe": options.kafka_topic,
        "startingOffsets": options.kafka_starting_offsets,
        "maxOffsetsPerTrigger": str(options.max_records_per_trigger),
        "failOnDataLoss": "true",
    }
    if options.kafka_sasl:
        secret = os.environ.get(EVENTHUB_SECRET_ENV)
        if not secret:
            raise PermanentJobError(
                f"--kafka-sasl needs the Event Hubs connection string in {EVENTHUB_SECRET_ENV}"
            )
        kafka.update(
            {
                "kafka.security.protocol": "SASL_SSL",
                "kafka.sasl.mechanism": "PLAIN",
                "kafka.sasl.jaas.config": (
                    "org.apache.kafka.common.security.plain.PlainLoginModule required "
                    f'username="$ConnectionString" password="{secret}";'
                ),
            }
        )
    return kafka


def kafka_lines(spark: SparkSession, options: StreamOptions) -> DataFrame:
    stream = spark.readStream.format("kafka").options(**kafka_options(options)).load()
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


def start(spark: SparkSession, options: StreamOptions):
    """Start the streaming query (returns it; the caller waits or stops)."""
    prepare_tables(spark, options.lakehouse)
    listener = StatusListener(options.status_file, options.query_name)
    spark.streams.addListener(listener)
    lines = (
        file_lines(spark, options.landing, options.max_files_per_trigger)
        if options.source == "files"
        else kafka_lines(spark, options)
    )
    query = (
        stream_records(lines)
        .writeStream.queryName(options.query_name)
        .option("checkpointLocation", options.checkpoint)
        .trigger(processingTime=f"{round(options.trigger_seconds * 1000)} milliseconds")
        .foreachBatch(
            lambda batch, batch_id: log.info(
                "Stream batch %s", write_batch(batch, batch_id, options.lakehouse, options.query_name)
            )
        )
        .start()
    )
    log.info(
        "Streaming %s into %s/bronze every %ss (checkpoint %s)",
        options.source,
        options.lakehouse,
        options.trigger_seconds,
        options.checkpoint,
    )
    return query
