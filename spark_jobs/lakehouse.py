"""Lakehouse layout and the one way to write Delta tables.

Every table lives at `<lakehouse>/<layer>/<table>` (SPEC §4). Jobs write only
through `create_table` (first write), `overwrite_slice` (replace one date's
slice atomically), `merge_by_key` (upsert/delete keyed rows in one atomic
MERGE) and `append` (log rows, and a stream's micro-batches, each once), so
retries and backfills never duplicate rows.
"""

from __future__ import annotations

import inspect
import json
import logging
import os
import sys
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextvars import copy_context
from pathlib import Path
from typing import TypeVar

from delta.tables import DeltaTable
from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F

from fhir_contract import EXIT_PERMANENT, EXIT_SKIPPED
from spark_jobs import lineage

log = logging.getLogger("fhir_lakehouse")

T = TypeVar("T")

# The table property naming the columns Delta keeps min/max statistics on.
STATS_COLUMNS_PROPERTY = "delta.dataSkippingStatsColumns"


class PermanentJobError(RuntimeError):
    """A failure caused by the inputs or the configuration, not by the platform
    (argparse exits with the same status for bad arguments)."""


class JobSkipped(Exception):
    """The job had nothing to do (no data yet, nothing new): not a failure. On Databricks
    the class name is what the orchestrator reads in the run's error (fhir_contract)."""


def run_job(main: Callable[[], object]) -> None:
    """Entry point of a job: how it ends tells the orchestrator what happened
    (fhir_contract.py), with one clear line in the log."""
    status = job_exit_status(main)
    if status:
        sys.exit(status)


def job_exit_status(main: Callable[[], object], lineage_parents: Mapping[str, str] | None = None) -> int:
    """Run a job's main, as one OpenLineage run (spark_jobs.lineage; `lineage_parents`:
    its parent and root, else the environment's); 0, EXIT_SKIPPED or EXIT_PERMANENT by
    how it ended. Any other failure propagates, argparse's usage errors as
    SystemExit(EXIT_PERMANENT)."""
    job = Path(inspect.getfile(getattr(main, "func", main))).stem
    ended: JobSkipped | PermanentJobError | None = None
    with lineage.job_run(job, **(lineage_parents or {})) as run:
        try:
            main()
        except (JobSkipped, PermanentJobError) as exc:
            ended = exc
            if isinstance(exc, PermanentJobError):
                run.fail(f"{type(exc).__name__}: {exc}")
    if ended is None:
        return 0
    skipped = isinstance(ended, JobSkipped)
    log.log(logging.WARNING if skipped else logging.ERROR, "%s: %s", type(ended).__name__, ended)
    if "DATABRICKS_RUNTIME_VERSION" in os.environ:
        # A Databricks run reports the exception as its error, "<class name>: <message>":
        # the base class names it, whichever subclass was raised.
        raise (JobSkipped if skipped else PermanentJobError)(str(ended)) from ended
    return EXIT_SKIPPED if skipped else EXIT_PERMANENT


def configure_logging() -> None:
    """Job logs go to stderr with a timestamp, level and logger name."""
    logging.basicConfig(
        level=logging.INFO,
        stream=sys.stderr,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )


def write_job_summary(spark: SparkSession, path: str, summary: dict) -> None:
    """One small JSON file (fhir_contract.job_summary_path), on any file system the
    lakehouse is on, replaced whole."""
    jvm = spark.sparkContext._jvm
    target = jvm.org.apache.hadoop.fs.Path(path)
    fs = target.getFileSystem(spark.sparkContext._jsc.hadoopConfiguration())
    stream = fs.create(target, True)
    try:
        stream.write(bytearray(json.dumps(summary, indent=1).encode()))
    finally:
        stream.close()
    log.info("Job summary written to %s", path)


def table_exists(spark: SparkSession, path: str) -> bool:
    return DeltaTable.isDeltaTable(spark, path)


def read_table(spark: SparkSession, path: str) -> DataFrame:
    lineage.read(path)
    return spark.read.format("delta").load(path)


def partitioned(df: DataFrame, partition_by: Sequence[str]) -> DataFrame:
    """Group rows by partition value before a partitioned write, in tasks of a
    sensible size (adaptive execution's REBALANCE).

    Without it every task writes a file per value it holds, many small files. A plain
    repartition by value instead puts a whole partition in one task: bronze wrote its
    observations single-threaded; REBALANCE splits large values and merges small ones.
    """
    return df.hint("rebalance", *partition_by) if partition_by else df


def create_table(
    spark: SparkSession,
    df: DataFrame,
    path: str,
    *,
    cluster_by: Sequence[str] = (),
) -> None:
    """Create the Delta table at `path` holding `df`, in one commit.

    `cluster_by` makes a liquid-clustered table: files are laid out by those
    columns when OPTIMIZE runs (the maintenance DAG) and skipped by their
    min/max statistics. It suits columns with thousands of values, such as
    clinical dates, where a partition per value means a tiny file per value, and
    writing them is most of a write's time. Partition (`overwrite_slice`) only by
    columns with few values.
    """
    lineage.wrote(path)
    if cluster_by:
        columns = ", ".join(f"`{c}`" for c in cluster_by)
        location = path.replace("`", "``")
        # Clustering needs min/max statistics on its columns, which Delta keeps only for
        # the first 32 columns by default; statistics on those columns are what skipping uses.
        spark.sql(
            f"CREATE TABLE delta.`{location}` USING delta CLUSTER BY ({columns}) "
            f"TBLPROPERTIES ('{STATS_COLUMNS_PROPERTY}' = '{','.join(cluster_by)}') "
            "AS SELECT * FROM {rows}",
            rows=df,
        )
        return
    df.write.format("delta").save(path)


def overwrite_slice(
    df: DataFrame,
    path: str,
    slice_condition: str,
    partition_by: Sequence[str] = (),
    *,
    rebalance: bool = True,
    stats_columns: Sequence[str] = (),
) -> None:
    """Atomically replace the rows matching `slice_condition` with `df`.

    Creates the table on first write. Rows of `df` must all satisfy the
    condition (Delta enforces it), so other slices are never touched. A column
    `df` adds is added to the table (other slices read it as null); a column whose
    type changed is refused.
    - `rebalance=False` skips `partitioned()`'s shuffle, for rows that are
      already grouped by partition value where they are;
    - `stats_columns`, when given, are the only columns a table created here
      keeps data skipping statistics on (Delta's default: the first 32).
    """
    lineage.wrote(path)
    writer = (partitioned(df, partition_by) if rebalance else df).write.format("delta")
    if stats_columns:
        writer = writer.option(STATS_COLUMNS_PROPERTY, ",".join(stats_columns))
    writer = writer.mode("overwrite").option("replaceWhere", slice_condition).option("mergeSchema", "true")
    writer.partitionBy(*partition_by).save(path)


def append(
    df: DataFrame,
    path: str,
    partition_by: Sequence[str] = (),
    *,
    once: tuple[str, int] | None = None,
    properties: Mapping[str, str] | None = None,
) -> None:
    """Append `df` to the table at `path`, created by the first append with the table
    `properties` given.

    `once=(application id, version)`: Delta skips the append when that application has
    already committed this version, so a replayed stream micro-batch lands once.
    """
    lineage.wrote(path)
    writer = df.write.format("delta").mode("append").partitionBy(*partition_by).options(**(properties or {}))
    if once is not None:
        writer = writer.option("txnAppId", once[0]).option("txnVersion", once[1])
    writer.save(path)


def run_concurrently(actions: Mapping[str, Callable[[], T]], max_workers: int = 3) -> dict[str, T]:
    """Run independent Spark actions (such as writes to different tables) from a few
    driver threads, and return their results by name.

    Spark runs their jobs side by side, so the cores one write leaves idle (its
    small stages, its Delta commit) serve another. Every action runs to its end;
    then the first failure, if any, is raised and the others are logged.
    """
    with ThreadPoolExecutor(max_workers=max_workers, thread_name_prefix="spark-action") as pool:
        # Each action runs in the caller's context (the job server routes a job's log by it).
        futures = {name: pool.submit(copy_context().run, action) for name, action in actions.items()}
    failures = [(name, future.exception()) for name, future in futures.items() if future.exception()]
    for name, error in failures[1:]:
        log.error("%s failed too: %s", name, error)
    if failures:
        raise failures[0][1]
    return {name: future.result() for name, future in futures.items()}


def last_commit_metrics(spark: SparkSession, path: str) -> dict:
    """The newest commit's operation and row counts (what it inserted, updated,
    deleted or wrote), from the Delta log: no data is read."""
    last = DeltaTable.forPath(spark, path).history(1).select("operation", "operationMetrics").first()
    metrics = last.operationMetrics or {}
    keys = ("numTargetRowsInserted", "numTargetRowsUpdated", "numTargetRowsDeleted", "numOutputRows")
    return {"operation": last.operation, **{k: int(metrics[k]) for k in keys if k in metrics}}


def merge_by_key(
    spark: SparkSession,
    updates: DataFrame,
    path: str,
    key_columns: Sequence[str],
    *,
    cluster_by: Sequence[str] = (),
    update_condition: str | None = None,
    delete_flag: str | None = None,
) -> None:
    """Upsert `updates` into the table at `path`, keyed by `key_columns`.

    - a matched row is replaced when `update_condition` (over aliases `t`, `s`)
      holds, e.g. only when the incoming version is newer;
    - rows whose boolean column `delete_flag` is true delete their match and
      are never inserted;
    - the table is created from `updates` (minus delete markers) the first time,
      clustered by `cluster_by` (see `create_table`).
    `updates` must hold at most one row per key.
    """
    lineage.wrote(path)
    if not table_exists(spark, path):
        initial = updates if delete_flag is None else updates.filter(~F.col(delete_flag))
        if delete_flag is not None:
            initial = initial.drop(delete_flag)
        create_table(spark, initial, path, cluster_by=cluster_by)
        return

    on = " AND ".join(f"t.`{c}` <=> s.`{c}`" for c in key_columns)
    target = DeltaTable.forPath(spark, path)
    columns = [c for c in updates.columns if c != delete_flag]
    assignments = {f"`{c}`": F.col(f"s.`{c}`") for c in columns}
    merge = target.alias("t").merge(updates.alias("s"), on)
    if delete_flag is not None:
        merge = merge.whenMatchedDelete(condition=F.col(f"s.`{delete_flag}`"))
    merge = merge.whenMatchedUpdate(condition=update_condition, set=assignments)
    insert_condition: Column | None = ~F.col(f"s.`{delete_flag}`") if delete_flag else None
    merge.whenNotMatchedInsert(condition=insert_condition, values=assignments).execute()
