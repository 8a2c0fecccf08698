"""Which bronze versions change a silver table, and the one MERGE that applies them:
for each resource the newest version wins (see spark_jobs/silver_normalize.py)."""

from __future__ import annotations

from pyspark.sql import Column, DataFrame, SparkSession, Window
from pyspark.sql import functions as F

from spark_jobs.lakehouse import PermanentJobError, create_table, merge_by_key, read_table, table_exists


def version_order(raw: DataFrame) -> Column:
    """A string that sorts bronze records of one resource from oldest to newest version."""
    event_time = F.coalesce(
        F.col("last_updated_ts"),
        F.try_to_timestamp(F.col("bundle_timestamp")),
        F.col("ingestion_date").cast("timestamp"),
    )
    version_number = F.coalesce(F.col("version_id").try_cast("bigint"), F.lit(0))
    return F.concat_ws(
        "|",
        F.date_format(event_time, "yyyyMMddHHmmssSSS"),
        F.lpad(version_number.cast("string"), 12, "0"),
        # Inside one transaction deletes are processed before creates/updates.
        F.when(F.col("is_delete"), F.lit("0")).otherwise(F.lit("1")),
        F.date_format(F.col("ingestion_date"), "yyyyMMdd"),
        F.col("content_hash"),
    )


def source_columns() -> list[Column]:
    """Provenance every silver row carries (and the merge compares)."""
    return [
        F.col("version_id").alias("source_version_id"),
        F.col("last_updated_ts").alias("source_last_updated"),
        F.col("ingestion_date").alias("source_ingestion_date"),
        F.col("content_hash").alias("source_content_hash"),
        F.col("version_order").alias("source_version_order"),
    ]


def select_changes(versions: DataFrame, tombstones: DataFrame, current: DataFrame) -> DataFrame:
    """The versions that must be applied to a silver table.

    versions:   bronze records in the window, by key (resource_key, version_order,
                is_delete, content_hash)
    tombstones: deletes already applied (resource_key, version_order)
    current:    what silver holds now (resource_key, version_order, content_hash)
    Returns, per resource, its newest record when that is newer than both the
    last applied delete and the current silver version, and differs from it.
    """
    # The newest version per resource: row_number over a sort is faster here than max_by(struct).
    latest_first = Window.partitionBy("resource_key").orderBy(F.col("version_order").desc())
    newest = versions.withColumn("_rank", F.row_number().over(latest_first)).filter("_rank = 1").drop("_rank")
    dead = tombstones.select("resource_key", F.col("version_order").alias("_deleted_order"))
    now = current.select(
        "resource_key",
        F.col("version_order").alias("_current_order"),
        F.col("content_hash").alias("_current_hash"),
    )
    joined = newest.join(dead, "resource_key", "left").join(now, "resource_key", "left")
    newer_than_delete = F.col("_deleted_order").isNull() | (F.col("version_order") > F.col("_deleted_order"))
    newer_than_current = F.col("_current_order").isNull() | (F.col("version_order") > F.col("_current_order"))
    same_content = ~F.col("is_delete") & (F.col("content_hash") == F.col("_current_hash"))
    return joined.filter(
        newer_than_delete & newer_than_current & ~F.coalesce(same_content, F.lit(False))
    ).drop("_deleted_order", "_current_order", "_current_hash")


CHANGE_COLUMNS = ("resource_key", "version_order", "is_delete", "content_hash")


def first_load_summary(keys: DataFrame) -> DataFrame:
    """One row over a first load's keys (CHANGE_COLUMNS): `most_records` of any one
    resource (null when there are none), `resources`, and `deletes` among them.

    When no resource has two records, every record applies: there is no silver
    row or tombstone to compare with, and no other version to prefer.
    """
    per_resource = keys.groupBy("resource_key").agg(
        F.count("*").alias("records"), F.max("is_delete").alias("is_delete")
    )
    return per_resource.agg(
        F.max("records").alias("most_records"),
        F.count("*").alias("resources"),
        F.count_if("is_delete").alias("deletes"),
    )


def records_of(versions: DataFrame, changes: DataFrame) -> DataFrame:
    """The bronze records (JSON included) of the versions `select_changes` chose.

    One per change: two records of one version (the same resource, unchanged, in
    two files of a day) share their version order, and either will do.
    """
    keys = ["resource_key", "version_order"]
    return versions.join(changes.select(*keys), keys, "left_semi").dropDuplicates(keys)


def replace_resource_rows(
    spark: SparkSession,
    path: str,
    new_rows: DataFrame,
    changed_keys: DataFrame,
    key_column: str,
    row_key_column: str,
    cluster_by: list[str],
) -> None:
    """Make each changed resource's rows in the table exactly `new_rows`, in one MERGE.

    Rows of a changed resource that the new version no longer has (a removed
    component, a deleted resource) are deleted in the same commit.
    """
    if not table_exists(spark, path):
        create_table(spark, new_rows, path, cluster_by=cluster_by)
        return
    target = read_table(spark, path)
    added = [c for c in new_rows.columns if c not in target.columns]
    if added:
        # Filling them for changed resources only would leave the others' null: rebuild instead.
        raise PermanentJobError(
            f"{path} predates its columns {added}: rebuild it from bronze (remove the table, then run "
            "silver_normalize with --lookback-days covering every bronze ingestion date)"
        )
    stale = (
        target.join(changed_keys.select(F.col("resource_key").alias(key_column)), key_column, "left_semi")
        .join(new_rows.select(row_key_column), row_key_column, "left_anti")
        .withColumn("_delete", F.lit(True))
    )
    source = new_rows.withColumn("_delete", F.lit(False)).unionByName(
        stale.select(*new_rows.columns, "_delete")
    )
    merge_by_key(spark, source, path, [row_key_column], cluster_by=cluster_by, delete_flag="_delete")
