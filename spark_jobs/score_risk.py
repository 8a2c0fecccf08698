"""Batch scoring: the champion models' risk scores per patient, as of one date.

    python -m spark_jobs.score_risk --lakehouse <root-uri> --tracking-uri <uri> --as-of D

What is scored and written: spark_jobs/ml/scoring.py.
"""

from __future__ import annotations

import argparse
import os

from pyspark.sql import SparkSession

from spark_jobs.gold.tables import as_of_argument
from spark_jobs.lakehouse import configure_logging, run_job
from spark_jobs.ml.scoring import run
from spark_jobs.session import build_spark_session


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="score_risk", description=__doc__.split("\n")[0])
    parser.add_argument("--lakehouse", required=True)
    parser.add_argument("--tracking-uri", default=os.environ.get("MLFLOW_TRACKING_URI"))
    parser.add_argument("--as-of", required=True, type=as_of_argument, help="YYYY-MM-DD or latest")
    args = parser.parse_args(argv)
    if not args.tracking_uri:
        parser.error("--tracking-uri (or MLFLOW_TRACKING_URI) is required")
    return args


def main(argv: list[str] | None = None, spark: SparkSession | None = None) -> dict[str, int]:
    configure_logging()
    args = parse_args(argv)
    spark = spark or build_spark_session("fhir-score-risk")
    return run(spark, lakehouse=args.lakehouse, tracking_uri=args.tracking_uri, as_of=args.as_of)


if __name__ == "__main__":
    run_job(main)
