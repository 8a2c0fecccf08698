"""The quality gate: what a batch run's tables measure against the thresholds, and
every breach named."""

from __future__ import annotations

import datetime as dt
import logging
from pathlib import Path

from pyspark.sql import SparkSession
from pyspark.sql import functions as F

from fhir_contract import table_path
from spark_jobs.lakehouse import PermanentJobError, read_table, table_exists
from spark_jobs.quality.thresholds import QualityThresholds, load_thresholds

log = logging.getLogger("fhir_lakehouse.quality")


class QualityGateError(PermanentJobError):
    """A threshold is crossed: the run fails at once, naming every breach."""


def measure(spark: SparkSession, lakehouse: str, run_date: dt.date, thresholds: QualityThresholds) -> dict:
    """What the thresholds are compared with, for this run date."""

    def table(layer: str, name: str):
        path = table_path(lakehouse, layer, name)
        if not table_exists(spark, path):
            raise QualityGateError(f"{layer}/{name} does not exist at {path}")
        return read_table(spark, path)

    runs = table("bronze", "ingest_runs").filter(
        (F.col("run_date") == F.lit(run_date)) & (F.col("status") == "ingested")
    )
    last = runs.orderBy(F.col("finished_at").desc()).first()
    if last is None:
        raise QualityGateError(f"no bronze ingest recorded for {run_date}")
    values = {
        "bronze.records_read": last.records_read,
        "bronze.quarantine_share": last.quarantined / last.records_read if last.records_read else 1.0,
    }
    silver = thresholds.silver
    for name in sorted(set(silver.min_rows) | set(silver.max_invalid_share)):
        counts = (
            table("silver", name)
            .agg(F.count("*").alias("rows"), F.count(F.when(~F.col("is_valid"), True)).alias("invalid"))
            .first()
        )
        values[f"silver.{name}.rows"] = counts.rows
        values[f"silver.{name}.invalid_share"] = counts.invalid / counts.rows if counts.rows else 0.0
    gold = thresholds.gold
    for name in sorted(set(gold.min_rows) | set(gold.max_null_share)):
        slice_ = table("gold", name).filter(F.col("as_of_date") == F.lit(run_date))
        columns = list(gold.max_null_share.get(name, {}))
        row = slice_.agg(
            F.count("*").alias("rows"), *[F.count(F.when(F.col(c).isNull(), True)).alias(c) for c in columns]
        ).first()
        values[f"gold.{name}.rows"] = row.rows
        for column in columns:
            values[f"gold.{name}.{column}.null_share"] = row[column] / row.rows if row.rows else 1.0
    return values


def breaches(values: dict, thresholds: QualityThresholds) -> list[str]:
    found = []

    def at_least(key: str, minimum) -> None:
        if values[key] < minimum:
            found.append(f"{key} = {values[key]} is below the minimum {minimum}")

    def at_most(key: str, maximum) -> None:
        if values[key] > maximum:
            found.append(f"{key} = {values[key]:.4f} is above the maximum {maximum}")

    bronze, silver, gold = thresholds.bronze, thresholds.silver, thresholds.gold
    at_least("bronze.records_read", bronze.min_records_read)
    at_most("bronze.quarantine_share", bronze.max_quarantine_share)
    for name, minimum in silver.min_rows.items():
        at_least(f"silver.{name}.rows", minimum)
    for name, maximum in silver.max_invalid_share.items():
        at_most(f"silver.{name}.invalid_share", maximum)
    for name, minimum in gold.min_rows.items():
        at_least(f"gold.{name}.rows", minimum)
    for name, columns in gold.max_null_share.items():
        for column, maximum in columns.items():
            at_most(f"gold.{name}.{column}.null_share", maximum)
    return found


def run(
    spark: SparkSession, *, lakehouse: str, run_date: dt.date, thresholds: str | Path | None = None
) -> dict:
    """The run date's measures; QualityGateError naming every breach (thresholds: a
    YAML file, default include/config/quality.yaml)."""
    limits = load_thresholds(thresholds)
    values = measure(spark, lakehouse, run_date, limits)
    log.info("Quality measures for %s: %s", run_date, values)
    found = breaches(values, limits)
    if found:
        raise QualityGateError(f"data-quality gate failed for {run_date}: " + "; ".join(found))
    log.info("Quality gate passed for %s", run_date)
    return values
