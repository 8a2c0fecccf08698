"""Weekly Delta maintenance: compaction with Z-ORDER, then VACUUM.

    python -m spark_jobs.maintenance --lakehouse <root-uri> [--retention-hours 168]

- bronze/fhir_raw: Z-ORDER BY resource_id. resource_type is already a partition
  column (Delta does not Z-order partition columns), so files are grouped by it.
- every other table: OPTIMIZE, which on the liquid-clustered silver tables
  (observations, medications, encounters: by date and patient) also clusters.
Then VACUUM with 7-day retention (files older than that which no table version
still references are removed; time travel stays possible for 7 days).
File counts before and after are logged and returned.
"""

from __future__ import annotations

import argparse
import logging

from delta.tables import DeltaTable
from pyspark.sql import SparkSession

from fhir_contract import LAYERS, table_path
from spark_jobs.lakehouse import configure_logging, run_job, table_exists
from spark_jobs.session import build_spark_session

log = logging.getLogger("fhir_lakehouse.maintenance")

Z_ORDER = {
    ("bronze", "fhir_raw"): ["resource_id"],
}


def lakehouse_tables(spark: SparkSession, lakehouse: str) -> list[tuple[str, str]]:
    """Every Delta table under <lakehouse>/<layer>/."""
    jvm = spark.sparkContext._jvm
    conf = spark.sparkContext._jsc.hadoopConfiguration()
    found = []
    for layer in LAYERS:
        folder = jvm.org.apache.hadoop.fs.Path(f"{lakehouse.rstrip('/')}/{layer}")
        fs = folder.getFileSystem(conf)
        if not fs.exists(folder):
            continue
        for status in fs.listStatus(folder):
            name = status.getPath().getName()
            if status.isDirectory() and table_exists(spark, table_path(lakehouse, layer, name)):
                found.append((layer, name))
    return sorted(found)


def file_count(spark: SparkSession, path: str) -> int:
    return DeltaTable.forPath(spark, path).detail().select("numFiles").first().numFiles


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="maintenance", description=__doc__.split("\n")[0])
    parser.add_argument("--lakehouse", required=True)
    parser.add_argument("--retention-hours", type=int, default=168)
    args = parser.parse_args(argv)
    if args.retention_hours < 168:
        parser.error("--retention-hours below 168 (7 days) would break time travel and concurrent readers")
    return args


def run(spark: SparkSession, *, lakehouse: str, retention_hours: int = 168) -> dict[str, dict[str, int]]:
    """Compact (or Z-order) and vacuum every table of the lakehouse; files before and after."""
    report = {}
    for layer, name in lakehouse_tables(spark, lakehouse):
        path = table_path(lakehouse, layer, name)
        before = file_count(spark, path)
        table = DeltaTable.forPath(spark, path)
        columns = Z_ORDER.get((layer, name))
        if columns:
            table.optimize().executeZOrderBy(*columns)
        else:
            table.optimize().executeCompaction()
        table.vacuum(retention_hours)
        report[f"{layer}/{name}"] = {"files_before": before, "files_after": file_count(spark, path)}
        log.info(
            "%s/%s: %d -> %d files%s",
            layer,
            name,
            before,
            report[f"{layer}/{name}"]["files_after"],
            f" (Z-ORDER BY {', '.join(columns)})" if columns else "",
        )
    return report


def main(argv: list[str] | None = None, spark: SparkSession | None = None) -> dict:
    configure_logging()
    args = parse_args(argv)
    return run(spark or build_spark_session("fhir-lakehouse-maintenance"), **vars(args))


if __name__ == "__main__":
    run_job(main)
