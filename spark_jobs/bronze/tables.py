"""The bronze tables (SPEC §4) and how classified records are cut into them."""

from __future__ import annotations

from pyspark.sql import DataFrame
from pyspark.sql import functions as F

# Per-type raw tables (SPEC §4) and the resource type each one holds.
TYPED_RAW_TABLES = {
    "observation_raw": "Observation",
    "medicationstatement_raw": "MedicationStatement",
    "medicationrequest_raw": "MedicationRequest",
    "patient_raw": "Patient",
    "encounter_raw": "Encounter",
    "condition_raw": "Condition",
}

# Data skipping statistics only on the columns audits filter by: collecting them on
# the raw JSON text copies every record once more and never skips a file.
RAW_STATS_COLUMNS = ("resource_id", "version_id", "last_updated_ts", "ingested_at", "run_id", "ingest_mode")
QUARANTINE_STATS_COLUMNS = ("reason", "source_file", "line_number", "ingested_at", "run_id", "ingest_mode")
STATS_COLUMNS = {
    "fhir_raw": RAW_STATS_COLUMNS,
    "quarantine": QUARANTINE_STATS_COLUMNS,
    **{table: RAW_STATS_COLUMNS for table in TYPED_RAW_TABLES},
}

# Columns that hold a new value in nearly every row (session.without_parquet_dictionary).
UNIQUE_COLUMNS = ("resource_json", "raw_text", "raw_base64", "content_hash", "resource_id")


def to_fhir_raw(records: DataFrame) -> DataFrame:
    good = records.filter(F.col("reason").isNull())
    return good.select(
        "resource_type",
        "resource_id",
        F.col("env.meta.versionId").alias("version_id"),
        F.col("env.meta.lastUpdated").alias("last_updated"),
        F.try_to_timestamp(F.col("env.meta.lastUpdated")).alias("last_updated_ts"),
        F.when(~F.col("is_delete"), F.col("text")).alias("resource_json"),
        "is_delete",
        "request_method",
        "source_file",
        "line_number",
        "bundle_id",
        "bundle_type",
        "bundle_timestamp",
        "bundle_entry_index",
        "bundle_entry_full_url",
        "content_hash",
        "ingestion_date",
        "ingested_at",
        "run_id",
        "ingest_mode",
    )


def bronze_tables(records: DataFrame) -> dict[str, tuple[DataFrame, list[str]]]:
    """The bronze tables bronze_records are cut into, except ingest_runs:
    name -> (rows, partition columns)."""
    fhir_raw = to_fhir_raw(records)
    tables = {
        "fhir_raw": (fhir_raw, ["resource_type", "ingestion_date"]),
        "quarantine": (to_quarantine(records), ["ingestion_date"]),
    }
    for table, resource_type in TYPED_RAW_TABLES.items():
        typed = fhir_raw.filter(F.col("resource_type") == resource_type).drop("resource_type")
        tables[table] = (typed, ["ingestion_date"])
    return tables


def to_quarantine(records: DataFrame) -> DataFrame:
    bad = records.filter(F.col("reason").isNotNull())
    return bad.select(
        "reason",
        "reason_detail",
        "source_file",
        "line_number",
        "bundle_id",
        "bundle_entry_index",
        F.coalesce(F.col("text"), F.concat_ws(" ", F.col("request_method"), F.col("request_url"))).alias(
            "raw_text"
        ),
        "raw_base64",
        "content_hash",
        "ingestion_date",
        "ingested_at",
        "run_id",
        "ingest_mode",
    )
