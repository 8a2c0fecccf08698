"""Bronze: land one day's FHIR extract in Delta, every record exactly once.

    python -m spark_jobs.bronze_ingest --landing <root-uri> --lakehouse <root-uri> --run-date D

Reads `<landing>/daily_extract/<D>/`: NDJSON (`*.ndjson`), single resources or
Bundles (`*.json`), gzipped or not (`*.gz`). Writes
- `bronze/fhir_raw` (partitioned by resource_type, ingestion_date): one row per
  resource, with the exact raw JSON text, and one tombstone row per Bundle
  DELETE entry;
- `bronze/<type>_raw` for the types silver reads;
- `bronze/quarantine`: every record that cannot be ingested, with the reason
  and its raw text (or raw bytes, base64, when not UTF-8);
- `bronze/ingest_runs`: per-run counts (read = ingested + quarantined).

Idempotent per date: each table's `ingestion_date = D` slice is replaced as a
whole, and a rerun over an unchanged landing folder (same file names, sizes
and modification times) is a no-op unless `--force` is given.
"""

from __future__ import annotations

import argparse
import datetime as dt

from pyspark.sql import SparkSession

from spark_jobs.bronze.job import SESSION_CONF, run
from spark_jobs.lakehouse import configure_logging, run_job
from spark_jobs.session import build_spark_session


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="bronze_ingest", description=__doc__.split("\n")[0])
    parser.add_argument("--landing", required=True, help="landing root URI (local path, abfss://, wasbs://)")
    parser.add_argument("--lakehouse", required=True, help="lakehouse root URI")
    parser.add_argument("--run-date", required=True, type=dt.date.fromisoformat, help="YYYY-MM-DD")
    parser.add_argument("--run-id", default=None, help="orchestrator run id (default: manual__<now>)")
    parser.add_argument(
        "--landing-prefix",
        default=None,
        help="read <landing>/<prefix> instead of <landing>/daily_extract/<run-date> (late or moved extracts)",
    )
    parser.add_argument(
        "--force", action="store_true", help="re-ingest even if the landing folder is unchanged"
    )
    return parser.parse_args(argv)


def main(argv: list[str] | None = None, spark: SparkSession | None = None) -> dict:
    configure_logging()
    args = parse_args(argv)
    spark = spark or build_spark_session("fhir-bronze-ingest", SESSION_CONF)
    return run(spark, **vars(args))


if __name__ == "__main__":
    run_job(main)
