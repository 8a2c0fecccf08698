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

from pyspark.sql import SparkSession

from spark_jobs.lakehouse import configure_logging, run_job
from spark_jobs.quality.gate import run
from spark_jobs.session import build_spark_session


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="quality_gate", description=__doc__.split("\n")[0])
    parser.add_argument("--lakehouse", required=True)
    parser.add_argument("--run-date", required=True, type=dt.date.fromisoformat)
    parser.add_argument("--thresholds", default=None, help="YAML file (default include/config/quality.yaml)")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None, spark: SparkSession | None = None) -> dict:
    configure_logging()
    args = parse_args(argv)
    return run(spark or build_spark_session("fhir-quality-gate"), **vars(args))


if __name__ == "__main__":
    run_job(main)
