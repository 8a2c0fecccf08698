"""Data-quality gate of a batch run: fails, naming every breach, when thresholds are crossed.

    python -m spark_jobs.quality_gate --lakehouse <root-uri> --run-date D

Thresholds: include/config/quality.yaml (quarantine share of the day's bronze
load, minimum rows and invalid-row shares in silver, minimum rows and null
shares in the gold as-of slice). A breach is a permanent failure: the job
exits with status 2 and the orchestrator does not retry it.
"""

from __future__ import annotations

import argparse
import datetime as dt
import logging

import yaml
from pyspark.sql import SparkSession
from pyspark.sql import functions as F

from spark_jobs.codesets import include_path
from spark_jobs.lakehouse import (
    PermanentJobError,
    configure_logging,
    read_table,
    run_job,
    table_exists,
    table_path,
)
from spark_jobs.session import build_spark_session

log = logging.getLogger("fhir_lakehouse.quality")


class QualityGateError(PermanentJobError):
    pass


def load_thresholds(path: str | None = None) -> dict:
    return yaml.safe_load(open(path or include_path("config", "quality.yaml")).read())


def measure(spark: SparkSession, lakehouse: str, run_date: dt.date, thresholds: dict) -> dict:
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
    silver = thresholds["silver"]
    for name in sorted(set(silver["min_rows"]) | set(silver["max_invalid_share"])):
        counts = (
            table("silver", name)
            .agg(F.count("*").alias("rows"), F.count(F.when(~F.col("is_valid"), True)).alias("invalid"))
            .first()
        )
        values[f"silver.{name}.rows"] = counts.rows
        values[f"silver.{name}.invalid_share"] = counts.invalid / counts.rows if counts.rows else 0.0
    gold = thresholds["gold"]
    for name in sorted(set(gold["min_rows"]) | set(gold["max_null_share"])):
        slice_ = table("gold", name).filter(F.col("as_of_date") == F.lit(run_date))
        columns = list(gold["max_null_share"].get(name, {}))
        row = slice_.agg(
            F.count("*").alias("rows"), *[F.count(F.when(F.col(c).isNull(), True)).alias(c) for c in columns]
        ).first()
        values[f"gold.{name}.rows"] = row.rows
        for column in columns:
            values[f"gold.{name}.{column}.null_share"] = row[column] / row.rows if row.rows else 1.0
    return values


def breaches(values: dict, thresholds: dict) -> list[str]:
    found = []

    def at_least(key: str, minimum) -> None:
        if values[key] < minimum:
            found.append(f"{key} = {values[key]} is below the minimum {minimum}")

    def at_most(key: str, maximum) -> None:
        if values[key] > maximum:
            found.append(f"{key} = {values[key]:.4f} is above the maximum {maximum}")

    bronze, silver, gold = thresholds["bronze"], thresholds["silver"], thresholds["gold"]
    at_least("bronze.records_read", bronze["min_records_read"])
    at_most("bronze.quarantine_share", bronze["max_quarantine_share"])
    for name, minimum in silver["min_rows"].items():
        at_least(f"silver.{name}.rows", minimum)
    for name, maximum in silver["max_invalid_share"].items():
        at_most(f"silver.{name}.invalid_share", maximum)
    for name, minimum in gold["min_rows"].items():
        at_least(f"gold.{name}.rows", minimum)
    for name, columns in gold["max_null_share"].items():
        for column, maximum in columns.items():
            at_most(f"gold.{name}.{column}.null_share", maximum)
    return found


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="quality_gate", description=__doc__.split("\n")[0])
    parser.add_argument("--lakehouse", required=True)
    parser.add_argument("--run-date", required=True, type=dt.date.fromisoformat)
    parser.add_argument("--thresholds", default=None, help="YAML file (default include/config/quality.yaml)")
    return parser.parse_args(argv)


def run(spark: SparkSession, args: argparse.Namespace) -> dict:
    thresholds = load_thresholds(args.thresholds)
    values = measure(spark, args.lakehouse, args.run_date, thresholds)
    log.info("Quality measures for %s: %s", args.run_date, values)
    found = breaches(values, thresholds)
    if found:
        raise QualityGateError(f"data-quality gate failed for {args.run_date}: " + "; ".join(found))
    log.info("Quality gate passed for %s", args.run_date)
    return values


def main(argv: list[str] | None = None, spark: SparkSession | None = None) -> dict:
    configure_logging()
    args = parse_args(argv)
    return run(spark or build_spark_session("fhir-quality-gate"), args)


if __name__ == "__main__":
    run_job(main)
