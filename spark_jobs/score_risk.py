"""Batch scoring: the champion models' risk scores per patient, as of one date.

    python -m spark_jobs.score_risk --lakehouse <root-uri> --tracking-uri <uri> --as-of D

Loads `models:/<name>@champion` from MLflow and writes `gold/risk_scores`
(long format: one row per patient and model), replacing the as-of slice, for
each model that has a champion (JobSkipped when none has, or gold is empty):
- fhir_diabetes_risk scores every patient's chronic_disease_features as of D;
- fhir_readmission_30d scores each patient's latest discharge on or before D.
Each row records the model version and the decision threshold it used.
"""

from __future__ import annotations

import argparse
import datetime as dt
import logging
import os
from functools import reduce

from pyspark.ml.functions import vector_to_array
from pyspark.sql import DataFrame, SparkSession, Window
from pyspark.sql import functions as F

from spark_jobs import gold_aggregate, model_registry
from spark_jobs.lakehouse import (
    JobSkipped,
    configure_logging,
    overwrite_slice,
    read_table,
    run_job,
    table_path,
)
from spark_jobs.model_registry import CHAMPION
from spark_jobs.session import build_spark_session
from spark_jobs.train_models import DIABETES_MODEL, READMISSION_MODEL, as_doubles

log = logging.getLogger("fhir_lakehouse.score")


def model_inputs(model) -> list[str]:
    """The feature columns a trained pipeline reads (its first stage's inputs)."""
    return list(model.stages[0].getInputCols())


def latest_discharge_per_patient(readmission_features: DataFrame) -> DataFrame:
    latest = Window.partitionBy("patient_id_hashed").orderBy(F.col("discharge_date").desc(), "encounter_id")
    return (
        readmission_features.withColumn("_rank", F.row_number().over(latest))
        .filter("_rank = 1")
        .drop("_rank")
    )


def score_rows(
    model, rows: DataFrame, *, model_name: str, version: str, threshold: float, as_of: dt.date
) -> DataFrame:
    features = model_inputs(model)
    subject = F.col("encounter_id") if "encounter_id" in rows.columns else F.lit(None).cast("string")
    scored = model.transform(as_doubles(rows, features)).withColumn(
        "risk_score", vector_to_array("probability")[1]
    )
    return scored.select(
        "patient_id_hashed",
        F.lit(as_of).alias("as_of_date"),
        F.lit(model_name).alias("model_name"),
        F.lit(version).alias("model_version"),
        F.lit(CHAMPION).alias("model_alias"),
        "risk_score",
        (F.col("risk_score") >= F.lit(threshold)).alias("risk_flag"),
        F.lit(threshold).alias("threshold"),
        subject.alias("subject_encounter_id"),
        F.current_timestamp().alias("scored_at"),
    )


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="score_risk", description=__doc__.split("\n")[0])
    parser.add_argument("--lakehouse", required=True)
    parser.add_argument("--tracking-uri", default=os.environ.get("MLFLOW_TRACKING_URI"))
    parser.add_argument(
        "--as-of", required=True, type=gold_aggregate.as_of_argument, help="YYYY-MM-DD or latest"
    )
    args = parser.parse_args(argv)
    if not args.tracking_uri:
        parser.error("--tracking-uri (or MLFLOW_TRACKING_URI) is required")
    return args


def run(spark: SparkSession, args: argparse.Namespace) -> dict[str, int]:
    import mlflow
    from mlflow.tracking import MlflowClient

    mlflow.set_tracking_uri(args.tracking_uri)
    client = MlflowClient()
    args.as_of = gold_aggregate.gold_as_of(spark, args.lakehouse, args.as_of)

    def gold(table: str) -> DataFrame:
        return read_table(spark, table_path(args.lakehouse, "gold", table)).filter(
            F.col("as_of_date") == F.lit(args.as_of)
        )

    subjects = {
        DIABETES_MODEL: gold("chronic_disease_features"),
        READMISSION_MODEL: latest_discharge_per_patient(gold("readmission_features")),
    }
    frames = []
    for name, rows in subjects.items():
        version = model_registry.champion_version(client, name)
        if version is None:
            log.warning("%s has no @%s yet: not scored", name, CHAMPION)
            continue
        model = mlflow.spark.load_model(f"models:/{name}@{CHAMPION}")
        threshold = float(version.tags.get("threshold", 0.5))
        frames.append(
            score_rows(
                model,
                rows,
                model_name=name,
                version=str(version.version),
                threshold=threshold,
                as_of=args.as_of,
            )
        )
    if not frames:
        raise JobSkipped(f"no model has a @{CHAMPION} yet ({', '.join(subjects)}): nothing to score")
    scores = reduce(DataFrame.unionByName, frames)
    path = table_path(args.lakehouse, "gold", "risk_scores")
    overwrite_slice(scores, path, f"as_of_date = '{args.as_of}'", ["as_of_date"])
    counts = {
        r.model_name: r["count"]
        for r in read_table(spark, path)
        .filter(F.col("as_of_date") == F.lit(args.as_of))
        .groupBy("model_name")
        .count()
        .collect()
    }
    log.info("Risk scores as of %s: %s", args.as_of, counts)
    return counts


def main(argv: list[str] | None = None, spark: SparkSession | None = None) -> dict[str, int]:
    configure_logging()
    args = parse_args(argv)
    spark = spark or build_spark_session("fhir-score-risk")
    return run(spark, args)


if __name__ == "__main__":
    run_job(main)
