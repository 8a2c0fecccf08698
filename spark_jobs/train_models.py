"""Train the declared risk models (include/ml/models.json) with Spark MLlib, track them
in MLflow, register them, promote a champion, and write the stale-champion pages.

    python -m spark_jobs.train_models --lakehouse <root-uri> --tracking-uri <uri> --as-of D
        [--page-after-retrain-skips N --summary-out <uri>]

What the models learn: spark_jobs/ml/labels.py; how they are chosen and promoted:
spark_jobs/ml/training.py; when the job is skipped and what it pages:
spark_jobs/ml/train_job.py.
"""

from __future__ import annotations

import argparse
import os

from pyspark.sql import SparkSession

from spark_jobs.gold.tables import as_of_argument
from spark_jobs.lakehouse import configure_logging, run_job
from spark_jobs.ml.train_job import run
from spark_jobs.session import build_spark_session


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="train_models", description=__doc__.split("\n")[0])
    parser.add_argument("--lakehouse", required=True, help="lakehouse root URI")
    parser.add_argument(
        "--tracking-uri",
        default=os.environ.get("MLFLOW_TRACKING_URI"),
        help="MLflow tracking URI (default: $MLFLOW_TRACKING_URI)",
    )
    parser.add_argument("--as-of", required=True, type=as_of_argument, help="YYYY-MM-DD or latest")
    parser.add_argument("--horizon-days", type=int, default=365, help="diabetes prediction horizon")
    parser.add_argument("--artifact-root", default=None, help="artifact location for new experiments")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--min-rows", type=int, default=20, help="minimum rows per split")
    parser.add_argument(
        "--force", action="store_true", help="retrain even on the inputs a model was last trained on"
    )
    # Checked against include/ml/models.json by run(): include/ may only be found once
    # the session has unpacked it (spark-submit --archives on a cluster).
    parser.add_argument("--models", nargs="+", default=None, help="default: every declared model")
    parser.add_argument(
        "--page-after-retrain-skips",
        type=int,
        default=None,
        help="page once when a champion has gone N training runs in a row without retraining",
    )
    parser.add_argument(
        "--summary-out", default=None, help="job summary file the pages are written to (always written)"
    )
    args = parser.parse_args(argv)
    if not args.tracking_uri:
        parser.error("--tracking-uri (or MLFLOW_TRACKING_URI) is required")
    if args.page_after_retrain_skips is not None:
        if args.page_after_retrain_skips < 1:
            parser.error("--page-after-retrain-skips must be >= 1")
        if args.summary_out is None:
            parser.error("--page-after-retrain-skips needs --summary-out, where its pages go")
    return args


def main(argv: list[str] | None = None, spark: SparkSession | None = None) -> dict[str, dict]:
    configure_logging()
    args = parse_args(argv)
    spark = spark or build_spark_session("fhir-train-models")
    return run(
        spark,
        lakehouse=args.lakehouse,
        tracking_uri=args.tracking_uri,
        as_of=args.as_of,
        horizon_days=args.horizon_days,
        artifact_root=args.artifact_root,
        seed=args.seed,
        min_rows=args.min_rows,
        force=args.force,
        models=args.models,
        page_after_retrain_skips=args.page_after_retrain_skips,
        summary_out=args.summary_out,
    )


if __name__ == "__main__":
    run_job(main)
