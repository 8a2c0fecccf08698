"""Batch scoring: the champion models' risk scores per patient, as of one date.

Loads `models:/<name>@champion` from MLflow and writes `gold/risk_scores`
(long format: one row per patient and model), replacing the as-of slice, for
each declared model that has a champion (JobSkipped when none has, or gold is empty):
- a model of chronic_disease_features scores every patient's row as of D;
- a model of readmission_features scores each patient's latest discharge on or before D.
Each row records the model version and the decision threshold it used; its risk_score
is the model's probability of the outcome: calibrated, when training kept a calibration
stage (spark_jobs/ml/calibration.py); its reasons are the three features that moved it
most, with their values and log-odds contributions (reasons.py).

The same run measures each model's drift from its training population into
gold/model_monitoring (monitoring.py) and, given a summary path, writes there the page
of each model whose drift episode begins (fhir_contract.job_summary_path).
"""

from __future__ import annotations

import datetime as dt
import logging
from functools import reduce

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from fhir_contract import table_path
from spark_jobs import lineage
from spark_jobs.gold.tables import AsOf, gold_as_of, gold_slice
from spark_jobs.lakehouse import JobSkipped, overwrite_slice, write_job_summary
from spark_jobs.ml import monitoring
from spark_jobs.ml.candidates import scored
from spark_jobs.ml.datasets import as_doubles, scored_subjects
from spark_jobs.ml.reasons import REASONS_COLUMN, explaining, with_reasons
from spark_jobs.ml.registry import CHAMPION, champion_version
from spark_jobs.ml.specs import model_specs

log = logging.getLogger("fhir_lakehouse.score")


def model_inputs(model) -> list[str]:
    """The feature columns a trained pipeline reads (its first stage's inputs)."""
    return list(model.stages[0].getInputCols())


def predictions(model, rows: DataFrame) -> DataFrame:
    """The model's predictions (`score`) for rows, its features read as doubles, with
    each row's reasons (reasons.py)."""
    features = model_inputs(model)
    model = explaining(model)
    return with_reasons(model, scored(model, as_doubles(rows, features)), features)


def score_rows(
    predicted: DataFrame, *, model_name: str, version: str, threshold: float, as_of: dt.date
) -> DataFrame:
    """gold/risk_scores rows of a model's predictions."""
    subject = F.col("encounter_id") if "encounter_id" in predicted.columns else F.lit(None).cast("string")
    return predicted.select(
        "patient_id_hashed",
        F.lit(as_of).alias("as_of_date"),
        F.lit(model_name).alias("model_name"),
        F.lit(version).alias("model_version"),
        F.lit(CHAMPION).alias("model_alias"),
        F.col("score").alias("risk_score"),
        (F.col("score") >= F.lit(threshold)).alias("risk_flag"),
        F.lit(threshold).alias("threshold"),
        F.col(REASONS_COLUMN).alias("reasons"),
        subject.alias("subject_encounter_id"),
        F.current_timestamp().alias("scored_at"),
    )


def run(
    spark: SparkSession,
    *,
    lakehouse: str,
    tracking_uri: str,
    as_of: AsOf,
    drift: monitoring.DriftSettings = monitoring.DEFAULT_DRIFT,
    summary_out: str | None = None,
) -> dict[str, int]:
    """Score every declared model's champion as of `as_of` (a date or "latest") and
    check its drift; rows scored per model."""
    import mlflow
    from mlflow.tracking import MlflowClient

    mlflow.set_tracking_uri(tracking_uri)
    client = MlflowClient()
    as_of = gold_as_of(spark, lakehouse, as_of)
    specs = model_specs()
    frames, checked, pages, cached = [], [], [], []
    for name, spec in specs.items():
        version = champion_version(client, name)
        if version is None:
            log.warning("%s has no @%s yet: not scored", name, CHAMPION)
            continue
        model = mlflow.spark.load_model(f"models:/{name}@{CHAMPION}")
        lineage.read_model(name, str(version.version))
        rows = scored_subjects(gold_slice(spark, lakehouse, spec.source_table, as_of), spec.source_table)
        predicted = predictions(model, rows).cache()
        cached.append(predicted)
        threshold = float(version.tags.get("threshold", 0.5))
        frames.append(
            score_rows(
                predicted, model_name=name, version=str(version.version), threshold=threshold, as_of=as_of
            )
        )
        reference = monitoring.training_reference(version)
        if reference is not None:
            rows_checked, page = monitoring.check_model(
                spark,
                lakehouse,
                predictions=predicted,
                features=model_inputs(model),
                reference=reference,
                version=version,
                as_of=as_of,
                settings=drift,
            )
            checked.extend(rows_checked)
            pages.extend([page] if page else [])
    if not frames:
        raise JobSkipped(f"no model has a @{CHAMPION} yet ({', '.join(specs)}): nothing to score")
    scores = reduce(DataFrame.unionByName, frames)
    overwrite_slice(
        scores, table_path(lakehouse, "gold", "risk_scores"), f"as_of_date = '{as_of}'", ["as_of_date"]
    )
    if checked:
        overwrite_slice(
            monitoring.monitoring_frame(spark, checked),
            table_path(lakehouse, "gold", monitoring.TABLE),
            f"as_of_date = '{as_of}'",
            ["as_of_date"],
        )
    if summary_out is not None:
        write_job_summary(spark, summary_out, {"pages": pages})
    for frame in cached:
        frame.unpersist()
    counts = {
        r.model_name: r["count"]
        for r in gold_slice(spark, lakehouse, "risk_scores", as_of).groupBy("model_name").count().collect()
    }
    log.info("Risk scores as of %s: %s; drift pages: %d", as_of, counts, len(pages))
    return counts
