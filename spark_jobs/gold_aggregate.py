"""Gold: clinical trends and ML features from silver, as of one date.

    python -m spark_jobs.gold_aggregate --lakehouse <root-uri> --as-of D [--trend-days N]

The tables and their semantics: spark_jobs/gold/ (the package's docstring and modules).
"""

from __future__ import annotations

import argparse
import datetime as dt

from pyspark.sql import SparkSession

from spark_jobs.gold.job import run
from spark_jobs.lakehouse import configure_logging, run_job
from spark_jobs.session import build_spark_session


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="gold_aggregate", description=__doc__.split("\n")[0])
    parser.add_argument("--lakehouse", required=True, help="lakehouse root URI")
    parser.add_argument("--as-of", required=True, type=dt.date.fromisoformat, help="YYYY-MM-DD")
    parser.add_argument(
        "--trend-days",
        type=int,
        default=90,
        help="days of daily trend rows (re)written, ending at --as-of (default 90)",
    )
    args = parser.parse_args(argv)
    if args.trend_days < 1:
        parser.error("--trend-days must be >= 1")
    return args


def main(argv: list[str] | None = None, spark: SparkSession | None = None) -> dict[str, int]:
    configure_logging()
    args = parse_args(argv)
    spark = spark or build_spark_session("fhir-gold-aggregate")
    return run(spark, lakehouse=args.lakehouse, as_of=args.as_of, trend_days=args.trend_days)


if __name__ == "__main__":
    run_job(main)
