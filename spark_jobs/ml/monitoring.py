"""The scoring run's drift checks (drift.py) against the population each champion
scored when it was trained, kept per run in gold/model_monitoring: one row per as-of date, model and
measure (each feature, and the score as `risk_score`), with its PSI, the rows compared,
the threshold, whether it drifts and since when. The previous run's rows there tell
whether a drift is new (an episode begins: page) or goes on (no page)."""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql.types import (
    BooleanType,
    DateType,
    DoubleType,
    LongType,
    StringType,
    StructField,
    StructType,
)

from fhir_contract import table_path
from spark_jobs.lakehouse import read_table, table_exists
from spark_jobs.ml import drift

log = logging.getLogger("fhir_lakehouse.monitoring")

TABLE = "model_monitoring"
SCHEMA = StructType(
    [
        StructField("as_of_date", DateType(), False),
        StructField("model_name", StringType(), False),
        StructField("model_version", StringType(), False),
        StructField("measure", StringType(), False),
        StructField("psi", DoubleType(), False),
        StructField("rows_scored", LongType(), False),
        StructField("reference_rows", LongType(), False),
        StructField("threshold", DoubleType(), False),
        StructField("drifted", BooleanType(), False),
        StructField("drifting_since", DateType(), True),
    ]
)


@dataclass(frozen=True)
class DriftSettings:
    threshold: float  # PSI from which a measure drifts
    min_rows: int  # rows each population needs for its drift to be judged


# score_risk's defaults; the DAG passes ml.drift_psi_threshold and ml.drift_min_rows.
DEFAULT_DRIFT = DriftSettings(threshold=0.25, min_rows=200)


def training_reference(version) -> dict | None:
    """The reference training saved with this model version; None for a version trained
    before references were saved (it is scored, not monitored)."""
    import mlflow

    try:
        return mlflow.artifacts.load_dict(f"runs:/{version.run_id}/{drift.REFERENCE_ARTIFACT}")
    except Exception as exc:  # MLflow raises its own error types per artifact store
        log.warning("%s v%s has no drift reference (%s): not monitored", version.name, version.version, exc)
        return None


def previous_drift(spark: SparkSession, lakehouse: str, model: str, as_of: dt.date) -> dict[str, dt.date]:
    """The measures the model's latest run before `as_of` found drifting, and since when."""
    path = table_path(lakehouse, "gold", TABLE)
    if not table_exists(spark, path):
        return {}
    earlier = read_table(spark, path).filter((F.col("model_name") == model) & (F.col("as_of_date") < as_of))
    latest = earlier.agg(F.max("as_of_date")).first()[0]
    if latest is None:
        return {}
    rows = earlier.filter((F.col("as_of_date") == latest) & F.col("drifted")).collect()
    return {row.measure: row.drifting_since for row in rows}


def check_model(
    spark: SparkSession,
    lakehouse: str,
    *,
    predictions: DataFrame,
    features: list[str],
    reference: dict,
    version,
    as_of: dt.date,
    settings: DriftSettings,
) -> tuple[list[tuple], dict | None]:
    """(this run's monitoring rows for the model, its page when a drift episode begins)."""
    rows, psis = drift.population_psi(drift.measured(predictions, features), reference)
    previous = previous_drift(spark, lakehouse, version.name, as_of)
    judged = min(rows, reference["rows"]) >= settings.min_rows
    if not judged:
        log.info(
            "%s: %d rows scored, %d in the reference: fewer than %d, drift not judged",
            version.name,
            rows,
            reference["rows"],
            settings.min_rows,
        )
    checks = drift.drift_checks(psis, previous, threshold=settings.threshold, judged=judged, as_of=as_of)
    drifting = {c.measure: round(c.psi, 3) for c in checks if c.drifted}
    log.info("%s v%s drift as of %s: %s", version.name, version.version, as_of, drifting or "none")
    monitoring = [
        (
            as_of,
            version.name,
            str(version.version),
            c.measure,
            float(c.psi),
            rows,
            int(reference["rows"]),
            float(settings.threshold),
            c.drifted,
            c.drifting_since,
        )
        for c in checks
    ]
    page = None
    if drift.starts_episode(checks, previous):
        page = drift.drift_page(version.name, str(version.version), as_of, checks, settings.threshold)
    return monitoring, page


def monitoring_frame(spark: SparkSession, rows: list[tuple]) -> DataFrame:
    return spark.createDataFrame(rows, SCHEMA).withColumn("monitored_at", F.current_timestamp())
