"""What each model learns to predict: the label definitions include/ml/models.json
names. Labels never come from their own inputs (SPEC §5):

- diabetes_onset_within_horizon: features are chronic_disease_features computed as of
  the cutoff T = D - horizon (default 365 days), from data dated on or before T. The
  label is new diabetes in (T, D]: an HbA1c >= 6.5 % or glucose >= 126 mg/dL result
  (the diabetes_risk_flag thresholds) or a diabetes diagnosis dated after T. The
  population is patients not flagged and not diagnosed at T who were tested (or
  diagnosed) in (T, D]: the model predicts diabetes onset within the horizon.
- readmission_30d: one row per discharge from gold readmission_features (features as
  of the discharge time; label = another inpatient stay starting within 30 days after
  it), only discharges whose 30 days are over by D.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

from spark_jobs import codesets
from spark_jobs.gold.chronic import chronic_disease_features

LABEL = "label"


@dataclass(frozen=True)
class TrainingSources:
    """What the labelled rows of one training run are built from."""

    as_of: dt.date
    horizon_days: int
    silver: dict[str, DataFrame]  # gold.inputs.silver_inputs
    gold: Callable[[str], DataFrame]  # a gold table's rows as of `as_of`


@dataclass(frozen=True)
class LabelDefinition:
    name: str
    source_table: str  # the gold table whose rows it labels
    defining_columns: frozenset[str]  # define or restate the label: never a feature
    rows: Callable[[TrainingSources], tuple[DataFrame, str]]  # labelled rows, and how they were labelled


def diabetes_onset_labels(inputs: dict[str, DataFrame], cutoff: dt.date, as_of: dt.date) -> DataFrame:
    """Per patient with evidence in (cutoff, as_of]: 1 when a result is in the diabetic
    range (the `diabetes` rule of include/codesets/clinical_thresholds.json, which
    diabetes_risk_flag applies to 90-day means) or a diabetes diagnosis starts there,
    else 0 (tested, never in range)."""

    def in_horizon(column: Column) -> Column:
        return (column > F.lit(cutoff)) & (column <= F.lit(as_of))

    diabetic = codesets.clinical_rule("diabetes")
    results = (
        inputs["measurements"]
        .filter(F.col("measure").isin(*diabetic.measures) & in_horizon(F.col("observation_date")))
        .select(
            "patient_id_hashed",
            diabetic.met(lambda measure: F.when(F.col("measure") == measure, F.col("value_numeric")))
            .cast("int")
            .alias(LABEL),
        )
    )
    diabetes_codes = codesets.condition_groups()["diabetes"]
    diagnoses = (
        inputs["conditions"]
        .filter(F.col("code").isin(*diabetes_codes) & in_horizon(F.coalesce("onset_date", "recorded_date")))
        .select("patient_id_hashed", F.lit(1).alias(LABEL))
    )
    return results.unionByName(diagnoses).groupBy("patient_id_hashed").agg(F.max(LABEL).alias(LABEL))


def diabetes_onset_rows(sources: TrainingSources) -> tuple[DataFrame, str]:
    cutoff = sources.as_of - dt.timedelta(days=sources.horizon_days)
    at_cutoff = chronic_disease_features(cutoff, **sources.silver)
    population = at_cutoff.filter(~F.col("diabetes_risk_flag") & ~F.col("has_diabetes_dx"))
    rows = population.join(diabetes_onset_labels(sources.silver, cutoff, sources.as_of), "patient_id_hashed")
    return rows, (
        f"features as of {cutoff} (D - {sources.horizon_days} days); label: diabetic-range HbA1c/glucose "
        f"or a diabetes diagnosis in ({cutoff}, {sources.as_of}]"
    )


def readmission_rows(sources: TrainingSources) -> tuple[DataFrame, str]:
    rows = (
        sources.gold("readmission_features")
        .filter(F.col("label_observable"))
        .withColumn(LABEL, F.col("readmission_30d").cast("int"))
    )
    return rows, "features as of each discharge; label: inpatient readmission within 30 days"


LABELS = {
    label.name: label
    for label in (
        LabelDefinition(
            "diabetes_onset_within_horizon",
            "chronic_disease_features",
            # The flag restates the label's thresholds at the cutoff; the diagnosis is the label.
            frozenset({"diabetes_risk_flag", "has_diabetes_dx"}),
            diabetes_onset_rows,
        ),
        LabelDefinition(
            "readmission_30d",
            "readmission_features",
            frozenset({"readmission_30d", "label_observable", "days_to_readmission"}),
            readmission_rows,
        ),
    )
}
