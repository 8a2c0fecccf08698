"""The bronze batch job: one day's landing folder into the bronze tables, every
record exactly once (see spark_jobs/bronze_ingest.py)."""

from __future__ import annotations

import datetime as dt
import logging
from functools import partial

from pyspark.sql import SparkSession
from pyspark.sql import functions as F

from fhir_contract import table_path
from spark_jobs.bronze.landing import landing_fingerprint, landing_folder, list_landing_files, read_documents
from spark_jobs.bronze.records import BATCH, bronze_records, classified_records
from spark_jobs.bronze.run_log import append_batch_run, previous_run_fingerprint, utc_now
from spark_jobs.bronze.tables import STATS_COLUMNS, TYPED_RAW_TABLES, UNIQUE_COLUMNS, bronze_tables
from spark_jobs.lakehouse import overwrite_slice, read_table, run_concurrently
from spark_jobs.session import READ_SPLIT_BYTES, without_parquet_dictionary

log = logging.getLogger("fhir_lakehouse.bronze")


def run(
    spark: SparkSession,
    *,
    landing: str,
    lakehouse: str,
    run_date: dt.date,
    run_id: str | None = None,
    landing_prefix: str | None = None,
    force: bool = False,
) -> dict:
    """Ingest `run_date`'s landing folder (or `<landing>/<landing_prefix>`); the run's counts.
    Unchanged since the last ingest of that day: nothing is written but a run-log row,
    unless `force`."""
    started = utc_now()
    run_id = run_id or f"manual__{started.isoformat(timespec='seconds')}"
    folder = landing_folder(landing, run_date, landing_prefix)
    files = list_landing_files(spark, folder)
    fingerprint = landing_fingerprint(files)
    paths = {
        name: table_path(lakehouse, "bronze", name)
        for name in ["fhir_raw", "quarantine", "ingest_runs", *TYPED_RAW_TABLES]
    }
    this_run = {
        "run_date": run_date,
        "run_id": run_id,
        "started": started,
        "fingerprint": fingerprint,
        "files": files,
    }
    log.info("Landing %s: %d files, %d bytes", folder, len(files), sum(f.size for f in files))

    if not force and previous_run_fingerprint(spark, paths["ingest_runs"], run_date) == fingerprint:
        log.info(
            "Landing folder unchanged since the last successful ingest of %s: nothing to do",
            run_date,
        )
        counts = {"status": "unchanged", "run_date": run_date.isoformat()}
        append_batch_run(spark, paths["ingest_runs"], status="unchanged", counts=None, **this_run)
        return counts

    records = bronze_records(
        classified_records(read_documents(spark, files)), run_date, run_id, started, BATCH
    ).persist()
    try:
        records_read = records.count()
        # The batch load of a date owns that date's batch rows; streamed rows stay.
        slice_condition = f"ingestion_date = '{run_date.isoformat()}' AND ingest_mode = '{BATCH}'"
        # Every table is cut from the cached records, all at once. Bulk exports land
        # one resource type per file, so the cached rows are already grouped by type:
        # each task writes its rows where they are, without a shuffle.
        run_concurrently(
            {
                table: partial(
                    overwrite_slice,
                    rows,
                    paths[table],
                    slice_condition,
                    partition_by,
                    rebalance=False,
                    stats_columns=STATS_COLUMNS[table],
                )
                for table, (rows, partition_by) in bronze_tables(records).items()
            }
        )
    finally:
        records.unpersist()

    counts = _counts(spark, paths, run_date)
    if counts["read"] != records_read:
        raise RuntimeError(
            f"Bronze counts do not reconcile for {run_date}: read {records_read} records but "
            f"the tables hold {counts['ingested']} ingested + {counts['quarantined']} quarantined"
        )
    append_batch_run(spark, paths["ingest_runs"], status="ingested", counts=counts, **this_run)
    log.info(
        "Bronze %s: read %d = ingested %d + quarantined %d; by type %s; quarantine by reason %s",
        run_date,
        counts["read"],
        counts["ingested"],
        counts["quarantined"],
        counts["ingested_by_type"],
        counts["quarantined_by_reason"],
    )
    return counts


def _counts(spark: SparkSession, paths: dict[str, str], run_date: dt.date) -> dict:
    today = (F.col("ingestion_date") == F.lit(run_date)) & (F.col("ingest_mode") == BATCH)
    by_type = {
        r.resource_type: r["count"]
        for r in read_table(spark, paths["fhir_raw"]).filter(today).groupBy("resource_type").count().collect()
    }
    by_reason = {
        r.reason: r["count"]
        for r in read_table(spark, paths["quarantine"]).filter(today).groupBy("reason").count().collect()
    }
    ingested, quarantined = sum(by_type.values()), sum(by_reason.values())
    return {
        "status": "ingested",
        "run_date": run_date.isoformat(),
        "read": ingested + quarantined,
        "ingested": ingested,
        "quarantined": quarantined,
        "ingested_by_type": dict(sorted(by_type.items())),
        "quarantined_by_reason": dict(sorted(by_reason.items())),
    }


# Session settings of the bronze job (the job server applies them to the job's session).
SESSION_CONF = {
    # A bronze write task holds the rows of a type or a few (see run()): with a
    # writer open per partition value it skips sorting its rows by value first.
    "spark.sql.maxConcurrentOutputFileWriters": "8",
    # The cached records are mostly distinct JSON texts, which the cache's
    # dictionary and run-length encodings cannot shrink; trying them only slows
    # the cache fill.
    "spark.sql.inMemoryColumnarStorage.compressed": "false",
    # Row groups silver's reads can split at (session.READ_SPLIT_BYTES).
    "spark.hadoop.parquet.block.size": str(READ_SPLIT_BYTES),
    **without_parquet_dictionary(UNIQUE_COLUMNS),
}
