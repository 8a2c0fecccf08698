"""Silver: normalised, de-identified clinical tables from bronze.

    python -m spark_jobs.silver_normalize --lakehouse <root-uri> --run-date D [--lookback-days N]
        [--views-folder <uri>]

Reads the bronze typed tables for ingestion dates (D - N, D]. Each core table is
silver's own SQL on FHIR ViewDefinition of its resource types
(include/silver_views/) followed by a pure clinical transform
(spark_jobs/silver_clinical.py). It MERGEs into
- `silver/observations_normalized` (one row per measurement: a panel with
  components such as blood pressure gives one row per component), clustered
  by observation_date and patient;
- `silver/medications_normalized` (MedicationStatement and MedicationRequest,
  `source_resource_type` says which), clustered by start_date and patient;
- `silver/patients_normalized`;
- `silver/encounters_normalized`, clustered by encounter_date and patient;
- `silver/conditions_normalized` (comorbidities for gold);
- `silver/resource_tombstones`: Bundle DELETEs, so a later rerun of an older
  date cannot bring a deleted resource back;
- `silver/<name>` for each SQL on FHIR ViewDefinition in include/views/ and in
  --views-folder (spark_jobs/sof/), with the same version and delete rules.

Versions: for each resource the newest version wins, ordered by
meta.lastUpdated (else the Bundle timestamp, else the ingestion date), then
meta.versionId, then ingestion date. A resource's silver rows change only when
a strictly newer version with different content arrives, and all its rows are
replaced in one MERGE, so reruns and overlapping lookback windows change
nothing. `entered-in-error` records are kept and flagged; gold drops them.

Dates (SPEC §5): each `*_ts` column is the event's exact instant in UTC; each
`*_date` column, and every day count, is the calendar date written in the record,
in the record's own offset (an evening event in New York keeps its own date).

PHI (SPEC §6): patient ids, MRNs and patient references become
HMAC-SHA256(FHIR_PHI_HASH_KEY, id); names, telecom, street lines, birth dates
and free text are never selected; addresses keep city, state and ZIP3.
"""

from __future__ import annotations

import argparse
import datetime as dt
import logging
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial, reduce

from pyspark import StorageLevel
from pyspark.sql import Column, DataFrame, SparkSession, Window
from pyspark.sql import functions as F

from spark_jobs import codesets, phi, silver_clinical
from spark_jobs.lakehouse import (
    PermanentJobError,
    configure_logging,
    create_table,
    last_commit_metrics,
    merge_by_key,
    read_table,
    run_concurrently,
    run_job,
    table_exists,
    table_path,
)
from spark_jobs.session import READ_SPLIT_BYTES, build_spark_session, without_parquet_dictionary
from spark_jobs.silver_clinical import HashFn
from spark_jobs.sof.catalog import (
    RESOURCE_KEY,
    ROW_ID,
    SilverView,
    load_views,
    silver_source_view,
    silver_view_rows,
)

log = logging.getLogger("fhir_lakehouse.silver")


# Columns that hold a new value in nearly every Observation row (session.without_parquet_dictionary).
UNIQUE_COLUMNS = ("measurement_id", "observation_id", "source_content_hash", "source_version_order")


# --- Versions, tombstones and the merge ----------------------------------------------------


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


@dataclass(frozen=True)
class SilverTable:
    name: str
    resource_types: tuple[str, ...]
    key_column: str  # one per resource; holds "<id>" or, for medications, "<Type>/<id>"
    row_key_column: str  # one per row
    # Liquid clustering, not partitions: a partition per clinical date is a tiny file per date.
    cluster_by: tuple[str, ...]
    view: SilverView | None = None  # a ViewDefinition's table (include/views/ or the extra folder)

    def resource_key(self, resource_type: str, resource_id: Column, hash_id: HashFn) -> Column:
        """The value `key_column` holds for a resource (never a raw patient id)."""
        if self.key_column == "patient_id_hashed" or (self.view is not None and resource_type == "Patient"):
            return hash_id(resource_id)
        if self.key_column == "medication_record_id":
            return F.concat(F.lit(f"{resource_type}/"), resource_id)
        return resource_id


SILVER_TABLES = (
    SilverTable("patients_normalized", ("Patient",), "patient_id_hashed", "patient_id_hashed", ()),
    SilverTable(
        "encounters_normalized",
        ("Encounter",),
        "encounter_id",
        "encounter_id",
        ("encounter_date", "patient_id_hashed"),
    ),
    SilverTable(
        "observations_normalized",
        ("Observation",),
        "observation_id",
        "measurement_id",
        ("observation_date", "patient_id_hashed"),
    ),
    SilverTable(
        "medications_normalized",
        ("MedicationStatement", "MedicationRequest"),
        "medication_record_id",
        "medication_record_id",
        ("start_date", "patient_id_hashed"),
    ),
    SilverTable("conditions_normalized", ("Condition",), "condition_id", "condition_id", ()),
)

BRONZE_TABLE = {
    "Patient": "patient_raw",
    "Encounter": "encounter_raw",
    "Observation": "observation_raw",
    "MedicationStatement": "medicationstatement_raw",
    "MedicationRequest": "medicationrequest_raw",
    "Condition": "condition_raw",
}

# Silver's own view of each resource type (include/silver_views/).
SOURCE_VIEWS = {
    "Observation": "observations",
    "Patient": "patients",
    "Encounter": "encounters",
    "Condition": "conditions",
    "MedicationStatement": "medication_statements",
    "MedicationRequest": "medication_requests",
}


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


# --- Job -----------------------------------------------


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="silver_normalize", description=__doc__.split("\n")[0])
    parser.add_argument("--lakehouse", required=True, help="lakehouse root URI")
    parser.add_argument("--run-date", required=True, type=dt.date.fromisoformat, help="YYYY-MM-DD")
    parser.add_argument(
        "--lookback-days",
        type=int,
        default=1,
        help="bronze ingestion dates to (re)process, ending at --run-date",
    )
    parser.add_argument(
        "--views-folder",
        help="a folder (local or abfss://) of ViewDefinitions to materialize besides include/views/",
    )
    args = parser.parse_args(argv)
    if args.lookback_days < 1:
        parser.error("--lookback-days must be >= 1")
    return args


def view_tables(spark: SparkSession, views_folder: str | None) -> tuple[SilverTable, ...]:
    """A silver table per ViewDefinition, all checked before any data is read."""
    reserved = {t.name for t in SILVER_TABLES} | {"resource_tombstones"}
    return tuple(
        SilverTable(view.name, (view.compiled.resource,), RESOURCE_KEY, ROW_ID, (), view=view)
        for view in load_views(spark, views_folder, reserved)
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


def run(spark: SparkSession, args: argparse.Namespace, phi_key: bytes) -> dict:
    hash_id = phi.hasher(phi_key)
    first_day = args.run_date - dt.timedelta(days=args.lookback_days - 1)
    in_window = F.col("ingestion_date").between(F.lit(first_day), F.lit(args.run_date))
    views = view_tables(spark, args.views_folder)
    bronze = read_bronze(spark, args.lakehouse, {t.resource_types[0] for t in views}, in_window)
    if not bronze:
        raise RuntimeError(
            f"No bronze tables under {args.lakehouse}/bronze: run bronze_ingest for {args.run_date} first."
        )
    urn_map = patient_urn_map(bronze["Patient"]) if "Patient" in bronze else None
    measures = codesets.measure_lookup(spark)
    severities = codesets.interpretation_severity()
    restricted, replacement = codesets.restricted_zip3()
    tombstones_path = table_path(args.lakehouse, "silver", "resource_tombstones")
    tombstones = (
        read_table(spark, tombstones_path)
        if table_exists(spark, tombstones_path)
        else spark.createDataFrame([], "resource_key string, resource_type string, version_order string")
    )
    job = SilverRun(
        spark=spark,
        args=args,
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
    args: argparse.Namespace
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
    spark, args, bronze = job.spark, job.args, job.bronze
    started = time.perf_counter()
    path = table_path(args.lakehouse, "silver", table.name)
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
        args.run_date,
        args.lookback_days,
        summary,
    )
    return summary


def clinical_rows(job: SilverRun, resource_type: str, live: DataFrame) -> DataFrame:
    """A core silver table's rows of live bronze records of one resource type."""
    view = job.source_views[resource_type]
    rows = silver_view_rows(
        live, view, source_columns(), job.hash_id, job.urn_map, mismatch=silver_clinical.TYPE_MISMATCH
    )
    if resource_type == "Patient":
        result = silver_clinical.patients(rows, job.hash_id, job.restricted, job.replacement)
    elif resource_type == "Observation":
        result = silver_clinical.observations(rows, job.measures, job.severities)
    else:
        result = CLINICAL_TRANSFORMS[resource_type](rows)
    leaked = view.reduced & set(result.columns)
    if leaked:  # a programming error, caught by the first test that builds the table
        raise RuntimeError(f"{view.source}: {sorted(leaked)} reach silver as read")
    return result


CLINICAL_TRANSFORMS = {
    "Encounter": silver_clinical.encounters,
    "Condition": silver_clinical.conditions,
    "MedicationStatement": silver_clinical.medication_statements,
    "MedicationRequest": silver_clinical.medication_requests,
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


def main(argv: list[str] | None = None, spark: SparkSession | None = None) -> dict:
    configure_logging()
    args = parse_args(argv)
    key = phi.load_phi_key()
    spark = spark or build_spark_session("fhir-silver-normalize", SESSION_CONF)
    return run(spark, args, key)


if __name__ == "__main__":
    run_job(main)
