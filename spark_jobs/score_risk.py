"""Batch scoring: the champion models' risk scores per patient, as of one date, and
the drift of the population scored from each model's training population.

    python -m spark_jobs.score_risk --lakehouse <root-uri> --tracking-uri <uri> --as-of D
        [--drift-threshold PSI --drift-min-rows N --summary-out <uri>]

What is scored and written: spark_jobs/ml/scoring.py; drift: spark_jobs/ml/drift.py.
"""

from __future__ import annotations

import argparse
import os

from pyspark.sql import SparkSession

from spark_jobs.gold.tables import as_of_argument
from spark_jobs.lakehouse import configure_logging, run_job
from spark_jobs.ml.monitoring import DEFAULT_DRIFT, DriftSettings
from spark_jobs.ml.scoring import run
from spark_jobs.session import build_spark_session


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="score_risk", description=__doc__.split("\n")[0])
    parser.add_argument("--lakehouse", required=True)
    parser.add_argument("--tracking-uri", default=os.environ.get("MLFLOW_TRACKING_URI"))
    parser.add_argument("--as-of", required=True, type=as_of_argument, help="YYYY-MM-DD or latest")
    parser.add_argument(
        "--drift-threshold",
        type=float,
        default=DEFAULT_DRIFT.threshold,
        help=f"PSI from which a measure drifts (default {DEFAULT_DRIFT.threshold})",
    )
    parser.add_argument(
        "--drift-min-rows",
        type=int,
        default=DEFAULT_DRIFT.min_rows,
        help=f"rows each population needs for its drift to be judged (default {DEFAULT_DRIFT.min_rows})",
    )
    parser.add_argument(
        "--summary-out", default=None, help="job summary file the drift pages are written to (always written)"
    )
    args = parser.parse_args(argv)
    if not args.tracking_uri:
        parser.error("--tracking-uri (or MLFLOW_TRACKING_URI) is required")
    if args.drift_threshold <= 0:
        parser.error("--drift-threshold must be > 0")
    if args.drift_min_rows < 1:
        parser.error("--drift-min-rows must be >= 1")
    return args


def main(argv: list[str] | None = None, spark: SparkSession | None = None) -> dict[str, int]:
    configure_logging()
    args = parse_args(argv)
    spark = spark or build_spark_session("fhir-score-risk")
    return run(
        spark,
        lakehouse=args.lakehouse,
        tracking_uri=args.tracking_uri,
        as_of=args.as_of,
        drift=DriftSettings(args.drift_threshold, args.drift_min_rows),
        summary_out=args.summary_out,
    )


if __name__ == "__main__":
    run_job(main)
