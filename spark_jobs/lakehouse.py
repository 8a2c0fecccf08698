"""Lakehouse layout and the one way to write Delta tables.

Every table lives at `<lakehouse>/<layer>/<table>` (SPEC §4). Jobs write only
through `overwrite_slice` (replace one date's slice atomically) and
`merge_by_key` (upsert/delete keyed rows in one atomic MERGE), so retries and
backfills never duplicate rows.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable, Sequence

from delta.tables import DeltaTable
from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F

LAYERS = ("bronze", "silver", "gold")

log = logging.getLogger("fhir_lakehouse")

# Exit status of a job whose failure a retry cannot fix (bad input or configuration);
# argparse uses the same status for bad arguments. The orchestrator fails such
# tasks at once instead of retrying them.
EXIT_PERMANENT = 2


class PermanentJobError(RuntimeError):
    """A failure caused by the inputs or the configuration, not by the platform."""


def run_job(main: Callable[[], object]) -> None:
    """Entry point of a job: a permanent error exits with EXIT_PERMANENT and one clear line."""
    try:
        main()
    except PermanentJobError as exc:
        log.error("%s: %s", type(exc).__name__, exc)
        sys.exit(EXIT_PERMANENT)


def configure_logging() -> None:
    """Job logs go to stderr with a timestamp, level and logger name."""
    logging.basicConfig(
        level=logging.INFO,
        stream=sys.stderr,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )


def table_path(lakehouse: str, layer: str, table: str) -> str:
    if layer not in LAYERS:
        raise ValueError(f"unknown lakehouse layer {layer!r}; expected one of {LAYERS}")
    return f"{lakehouse.rstrip('/')}/{layer}/{table}"


def table_exists(spark: SparkSession, path: str) -> bool:
    return DeltaTable.isDeltaTable(spark, path)


def read_table(spark: SparkSession, path: str) -> DataFrame:
    return spark.read.format("delta").load(path)


def partitioned(df: DataFrame, partition_by: Sequence[str]) -> DataFrame:
    """Cluster rows by partition value before a partitioned write: one file per
    partition value instead of one per task and value (many tiny files are the
    main cost of date-partitioned tables: measured 25 s -> 7 s for 78k rows
    over 731 dates)."""
    return df.repartition(*partition_by) if partition_by else df


def overwrite_slice(
    df: DataFrame,
    path: str,
    slice_condition: str,
    partition_by: Sequence[str] = (),
) -> None:
    """Atomically replace the rows matching `slice_condition` with `df`.

    Creates the table on first write. Rows of `df` must all satisfy the
    condition (Delta enforces it), so other slices are never touched.
    """
    (
        partitioned(df, partition_by)
        .write.format("delta")
        .mode("overwrite")
        .option("replaceWhere", slice_condition)
        .partitionBy(*partition_by)
        .save(path)
    )


def merge_by_key(
    spark: SparkSession,
    updates: DataFrame,
    path: str,
    key_columns: Sequence[str],
    *,
    partition_by: Sequence[str] = (),
    update_condition: str | None = None,
    delete_flag: str | None = None,
) -> None:
    """Upsert `updates` into the table at `path`, keyed by `key_columns`.

    - a matched row is replaced when `update_condition` (over aliases `t`, `s`)
      holds, e.g. only when the incoming version is newer;
    - rows whose boolean column `delete_flag` is true delete their match and
      are never inserted;
    - the table is created from `updates` (minus delete markers) the first time.
    `updates` must hold at most one row per key.
    """
    if not table_exists(spark, path):
        initial = updates if delete_flag is None else updates.filter(~F.col(delete_flag))
        if delete_flag is not None:
            initial = initial.drop(delete_flag)
        partitioned(initial, partition_by).write.format("delta").partitionBy(*partition_by).save(path)
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
