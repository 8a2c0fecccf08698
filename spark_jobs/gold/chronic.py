"""chronic_disease_features: one row per patient as of D: demographics, vital and lab
aggregates, slopes, last values, encounters, comorbidities, medications, and the SPEC §5
risk flags."""

from __future__ import annotations

import datetime as dt

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

from spark_jobs import codesets
from spark_jobs.gold.feature_blocks import spine_features
from spark_jobs.gold.measures import short
from spark_jobs.gold.spine import as_of_spine


def risk_flags(features: DataFrame) -> DataFrame:
    """SPEC §5 risk flags (include/codesets/clinical_thresholds.json) on each measure's
    mean over the rule's window; a missing measurement never raises a flag."""

    def met(name: str) -> Column:
        rule = codesets.clinical_rule(name)
        return rule.met(lambda measure: F.col(f"avg_{short(measure)}_{rule.window_days}d"))

    hypertension = met("hypertension")
    return (
        features.withColumn("diabetes_risk_flag", met("diabetes"))
        .withColumn("hypertension_risk_flag", hypertension)
        .withColumn("cvd_risk_flag", met("high_ldl") | (met("high_total_cholesterol") & hypertension))
    )


def chronic_disease_features(as_of: dt.date, **inputs: DataFrame) -> DataFrame:
    """One row per patient: everything known at the end of `as_of`, from the silver
    inputs by name (inputs.silver_inputs)."""
    features = spine_features(as_of_spine(inputs["patients"], as_of), **inputs)
    return (
        risk_flags(features)
        .drop("spine_id", "cutoff_date", "cutoff_ts")
        .withColumn("as_of_date", F.lit(as_of))
    )
