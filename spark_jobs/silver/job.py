"""The silver job: one run's bronze window applied to every silver table."""

from __future__ import annotations

import datetime as dt
import logging
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial, reduce

from pyspark import StorageLevel
from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F

from fhir_contract import table_path
from spark_jobs import codesets, phi
from spark_jobs.lakehouse import last_commit_metrics, merge_by_key, read_table, run_concurrently, table_exists
from spark_jobs.session import READ_SPLIT_BYTES, without_parquet_dictionary
from spark_jobs.silver import clinical
from spark_jobs.silver.changes import (
    CHANGE_COLUMNS,
    first_load_summary,
    records_of,
    replace_resource_rows,
    select_changes,
    source_columns,
    version_order,
)
from spark_jobs.silver.tables import BRONZE_TABLE, SILVER_TABLES, SOURCE_VIEWS, SilverTable, view_tables
from spark_jobs.sof.catalog import SilverView, silver_source_view, silver_view_rows

log = logging.getLogger("fhir_lakehouse.silver")

# Columns that hold a new value in nearly every Observation row (session.without_parquet_dictionary).
UNIQUE_COLUMNS = ("measurement_id", "observation_id", "source_content_hash", "source_version_order")


def patient_urn_map(patients: DataFrame) -> DataFrame:
    """Bundle fullUrls of Patient entries, for resolving urn:uuid references."""
    return (
        patients.filter(F.col("bundle_entry_full_url").isNotNull() & ~F.col("is_delete"))
        .select(
            "ingestion_date",
            "source_file",
            "bundle_id",
            F.col("bundle_entry_full_url").alias("full_url"),
            F.col("resource_id").alias("patient_id"),
        )
        .distinct()
    )


def read_bronze(spark: SparkSession, lakehouse: str, resource_types: set[str], in_window: Column) -> dict:
    """Bronze records in the window per resource type: its typed raw table, else its
    partition of fhir_raw (every type lands there) when that holds any: a view of a
    type the window lacks writes nothing."""
    bronze = {
        resource_type: read_table(spark, table_path(lakehouse, "bronze", table)).filter(in_window)
        for resource_type, table in BRONZE_TABLE.items()
        if _bronze_exists(spark, lakehouse, table)
    }
    others = sorted(resource_types - set(BRONZE_TABLE))
    if others and _bronze_exists(spark, lakehouse, "fhir_raw"):
        raw = read_table(spark, table_path(lakehouse, "bronze", "fhir_raw")).filter(in_window)
        for resource_type in others:
            records = raw.filter(F.col("resource_type") == resource_type).drop("resource_type")
            if not records.isEmpty():
                bronze[resource_type] = records
    return bronze


def run(
    spark: SparkSession,
    *,
    lakehouse: str,
    run_date: dt.date,
    phi_key: bytes,
    lookback_days: int = 1,
    views_folder: str | None = None,
) -> dict:
    """Apply the bronze records of ingestion dates (run_date - lookback_days, run_date]
    to every silver table; a summary per table that had records."""
    hash_id = phi.hasher(phi_key)
    first_day = run_date - dt.timedelta(days=lookback_days - 1)
    in_window = F.col("ingestion_date").between(F.lit(first_day), F.lit(run_date))
    views = view_tables(spark, views_folder)
    bronze = read_bronze(spark, lakehouse, {t.resource_types[0] for t in views}, in_window)
    if not bronze:
        raise RuntimeError(
            f"No bronze tables under {lakehouse}/bronze: run bronze_ingest for {run_date} first."
        )
    urn_map = patient_urn_map(bronze["Patient"]) if "Patient" in bronze else None
    measures = codesets.measure_lookup(spark)
    severities = codesets.interpretation_severity()
    restricted, replacement = codesets.restricted_zip3()
    tombstones_path = table_path(lakehouse, "silver", "resource_tombstones")
    tombstones = (
        read_table(spark, tombstones_path)
        if table_exists(spark, tombstones_path)
        else spark.createDataFrame([], "resource_key string, resource_type string, version_order string")
    )
    job = SilverRun(
        spark=spark,
        lakehouse=lakehouse,
        run_date=run_date,
        lookback_days=lookback_days,
        bronze=bronze,
        hash_id=hash_id,
        urn_map=urn_map,
        measures=measures,
        severities=severities,
        restricted=restricted,
        replacement=replacement,
        tombstones=tombstones,
        tombstones_path=tombstones_path,
        tombstones_lock=threading.Lock(),
        source_views={kind: silver_source_view(name) for kind, name in SOURCE_VIEWS.items()},
    )

    # The small tables are normalized two at a time: one table's short jobs, planning
    # and Delta commits leave gaps the other fills. Observations, most of the volume,
    # then run alone.
    tables = SILVER_TABLES + views
    observations = [t for t in tables if t.name == "observations_normalized"]
    others = [t for t in tables if t not in observations]
    summaries = run_concurrently({t.name: partial(normalize_table, job, t) for t in others}, max_workers=2)
    summaries.update({t.name: normalize_table(job, t) for t in observations})
    return {t.name: summaries[t.name] for t in tables if summaries.get(t.name) is not None}


@dataclass(frozen=True)
class SilverRun:
    """What every table of one run reads, built once by run()."""

    spark: SparkSession
    lakehouse: str
    run_date: dt.date
    lookback_days: int
    bronze: dict[str, DataFrame]  # resource type -> bronze rows in the run's window
    hash_id: Callable[[Column | str], Column]
    urn_map: DataFrame | None
    measures: DataFrame
    severities: dict[str, str]
    restricted: list[str]
    replacement: str
    tombstones: DataFrame
    tombstones_path: str
    tombstones_lock: threading.Lock
    source_views: dict[str, SilverView]  # resource type -> silver's own view of it


def normalize_table(job: SilverRun, table: SilverTable) -> dict | None:
    """Apply one run's bronze records to one silver table; its summary, or None
    when bronze holds none of its resource types."""
    spark, bronze = job.spark, job.bronze
    started = time.perf_counter()
    path = table_path(job.lakehouse, "silver", table.name)
    first_load = not table_exists(spark, path)
    current = (
        spark.createDataFrame([], "resource_key string, version_order string, content_hash string")
        if first_load
        else _current_versions(spark, path, table)
    )
    new_rows, changes, persisted, counts = [], [], [], Counter()
    for resource_type in table.resource_types:
        if resource_type not in bronze:
            continue
        versions = bronze[resource_type].withColumn("version_order", version_order(bronze[resource_type]))
        versions = versions.withColumn(
            "resource_key", table.resource_key(resource_type, F.col("resource_id"), job.hash_id)
        )
        # Which records to apply is decided on their keys alone: the resource JSON, most
        # of the data, is neither shuffled nor cached, only read by the normalize.
        keys = versions.select(*CHANGE_COLUMNS)
        tombstones = job.tombstones.filter(F.col("resource_type") == resource_type)
        key_summary = first_load_summary(keys).first() if first_load and tombstones.isEmpty() else None
        if key_summary is not None and (key_summary.most_records or 0) <= 1:
            # A first load that holds each resource once: every record applies. One
            # aggregation over the keys says so, cheaper than select_changes' sort and joins.
            changed = keys.withColumn("resource_type", F.lit(resource_type))
            counts.update({False: key_summary.resources - key_summary.deletes, True: key_summary.deletes})
            every_record_applies = True
        else:
            changed = (
                select_changes(keys, tombstones, current)
                .withColumn("resource_type", F.lit(resource_type))
                .persist(StorageLevel.DISK_ONLY)
            )
            persisted.append(changed)
            by_kind = {r.is_delete: r["count"] for r in changed.groupBy("is_delete").count().collect()}
            counts.update(by_kind)
            # When every record is its resource's only version and applies (a day of new
            # versions), there is nothing to pick out of bronze.
            every_record_applies = sum(by_kind.values()) == versions.count()
        changes.append(changed)
        records = versions if every_record_applies else records_of(versions, changed)
        live = records.filter(~F.col("is_delete"))
        if table.view is not None:
            new_rows.append(silver_view_rows(live, table.view, source_columns(), job.hash_id, job.urn_map))
            continue
        new_rows.append(clinical_rows(job, resource_type, live))
    if not changes:
        return None
    all_changes = reduce(DataFrame.unionByName, changes)
    counts = +counts  # only kinds of change that occurred
    if counts or first_load:  # an empty first run still creates the table
        replace_resource_rows(
            spark,
            path,
            reduce(DataFrame.unionByName, new_rows),
            all_changes.select("resource_key"),
            table.key_column,
            table.row_key_column,
            list(table.cluster_by),
        )
    if counts.get(True):
        deletes = all_changes.filter(F.col("is_delete")).select(
            "resource_key", "resource_type", "version_order"
        )
        # Tables are normalized side by side; concurrent MERGEs into the one
        # tombstones table would conflict.
        with job.tombstones_lock:
            merge_by_key(
                spark,
                deletes,
                job.tombstones_path,
                ["resource_type", "resource_key"],
                update_condition="s.version_order > t.version_order",
            )
    summary = {
        "resources_changed": counts.get(False, 0),
        "resources_deleted": counts.get(True, 0),
        **(last_commit_metrics(spark, path) if counts else {}),
        "seconds": round(time.perf_counter() - started, 2),
    }
    for changed in persisted:
        changed.unpersist()
    log.info(
        "Silver %s for %s (lookback %d): %s",
        table.name,
        job.run_date,
        job.lookback_days,
        summary,
    )
    return summary


def clinical_rows(job: SilverRun, resource_type: str, live: DataFrame) -> DataFrame:
    """A core silver table's rows of live bronze records of one resource type."""
    view = job.source_views[resource_type]
    rows = silver_view_rows(
        live, view, source_columns(), job.hash_id, job.urn_map, mismatch=clinical.TYPE_MISMATCH
    )
    if resource_type == "Patient":
        result = clinical.patients(rows, job.hash_id, job.restricted, job.replacement)
    elif resource_type == "Observation":
        result = clinical.observations(rows, job.measures, job.severities)
    else:
        result = CLINICAL_TRANSFORMS[resource_type](rows)
    leaked = view.reduced & set(result.columns)
    if leaked:  # a programming error, caught by the first test that builds the table
        raise RuntimeError(f"{view.source}: {sorted(leaked)} reach silver as read")
    return result


CLINICAL_TRANSFORMS = {
    "Encounter": clinical.encounters,
    "Condition": clinical.conditions,
    "MedicationStatement": clinical.medication_statements,
    "MedicationRequest": clinical.medication_requests,
}


def _bronze_exists(spark: SparkSession, lakehouse: str, table: str) -> bool:
    return table_exists(spark, table_path(lakehouse, "bronze", table))


def _current_versions(spark: SparkSession, path: str, table: SilverTable) -> DataFrame:
    return (
        read_table(spark, path)
        .select(
            F.col(table.key_column).alias("resource_key"),
            F.col("source_version_order").alias("version_order"),
            F.col("source_content_hash").alias("content_hash"),
        )
        .dropDuplicates(["resource_key"])
    )


# Session settings of the silver job (the job server applies them to the job's session).
SESSION_CONF = {
    # Tasks of bronze's row group size, balanced on few cores.
    "spark.sql.files.maxPartitionBytes": str(READ_SPLIT_BYTES),
    **without_parquet_dictionary(UNIQUE_COLUMNS),
}
