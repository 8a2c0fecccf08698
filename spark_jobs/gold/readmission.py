"""readmission_features: one row per inpatient stay discharged on or before D: features
known at discharge and readmission_30d (another inpatient stay of the same patient
starting within 30 days after the discharge; null while those 30 days are not yet
over and no readmission is seen)."""

from __future__ import annotations

import datetime as dt

from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from spark_jobs.gold.feature_blocks import EMERGENCY_CLASSES, INPATIENT_CLASSES, spine_features
from spark_jobs.gold.spine import in_window

READMISSION_DAYS = 30
# A stay without an earlier one: no prior admission (its days since the previous discharge stay null).
PRIOR_STAY_DEFAULTS = {"prior_inpatient_count_365d": 0, "prior_emergency_count_365d": 0}


def inpatient_stays(encounters: DataFrame) -> DataFrame:
    return encounters.filter(
        F.col("encounter_class").isin(*INPATIENT_CLASSES)
        & ~F.coalesce(F.col("status").isin("cancelled", "entered-in-error"), F.lit(False))
        & F.col("period_start").isNotNull()
    )


def readmission_labels(stays: DataFrame, as_of: dt.date) -> DataFrame:
    """Discharges on or before as_of with readmission_30d: another stay of the same
    patient starting after the discharge and within 30 days of its date."""
    index = stays.filter(F.col("encounter_end_date") <= as_of).select(
        "encounter_id",
        "patient_id_hashed",
        "period_start",
        "period_end",
        F.col("encounter_date").alias("admission_date"),
        F.col("encounter_end_date").alias("discharge_date"),
        "length_of_stay_days",
        "duration_hours",
    )
    later = stays.filter(F.col("encounter_date") <= as_of).select(
        "patient_id_hashed",
        F.col("encounter_id").alias("next_id"),
        F.col("period_start").alias("next_start"),
        F.col("encounter_date").alias("next_date"),
    )
    # After the discharge instant, and at most 30 calendar days after the discharge date.
    readmitted = (
        index.join(later, "patient_id_hashed")
        .filter(
            (F.col("next_id") != F.col("encounter_id"))
            & (F.col("next_start") > F.col("period_end"))
            & (F.datediff(F.col("next_date"), F.col("discharge_date")) <= READMISSION_DAYS)
        )
        .groupBy("encounter_id")
        .agg(F.min_by("next_date", "next_start").alias("readmission_date"))
    )
    observable = F.date_add(F.col("discharge_date"), READMISSION_DAYS) <= F.lit(as_of)
    return (
        index.join(readmitted, "encounter_id", "left")
        .withColumn("label_observable", observable | F.col("readmission_date").isNotNull())
        .withColumn(
            "readmission_30d",
            F.when(F.col("readmission_date").isNotNull(), 1).when(observable, 0).cast("int"),
        )
        .withColumn("days_to_readmission", F.datediff("readmission_date", "discharge_date"))
    )


def readmission_features(as_of: dt.date, **inputs: DataFrame) -> DataFrame:
    """One row per discharge: features known at the discharge time, and the label, from
    the silver inputs by name (inputs.silver_inputs)."""
    encounters = inputs["encounters"]
    stays = inpatient_stays(encounters)
    labels = readmission_labels(stays, as_of)
    spine = labels.select(
        F.col("encounter_id").alias("spine_id"),
        "patient_id_hashed",
        F.col("discharge_date").alias("cutoff_date"),
        F.col("period_end").alias("cutoff_ts"),
    )
    general = spine_features(spine, **inputs)
    # History before this admission (the stay itself is not "prior"): encounters that
    # started before it, counted in the 365 days of recorded dates ending on the admission date.
    prior_year = in_window(F.col("prior_date"), F.col("admission_date"), 365)
    inpatient = F.col("encounter_class").isin(*INPATIENT_CLASSES)
    prior = (
        labels.select(
            F.col("encounter_id").alias("spine_id"),
            "patient_id_hashed",
            F.col("period_start").alias("index_start"),
            "admission_date",
        )
        .join(
            encounters.select(
                "patient_id_hashed",
                "encounter_class",
                F.col("period_start").alias("prior_start"),
                F.col("encounter_date").alias("prior_date"),
                F.col("encounter_end_date").alias("prior_end_date"),
            ),
            "patient_id_hashed",
        )
        .filter(F.col("prior_start") < F.col("index_start"))
        .groupBy("spine_id")
        .agg(
            F.count(F.when(inpatient & prior_year, True)).alias("prior_inpatient_count_365d"),
            F.count(F.when(F.col("encounter_class").isin(*EMERGENCY_CLASSES) & prior_year, True)).alias(
                "prior_emergency_count_365d"
            ),
            F.datediff(F.max("admission_date"), F.max(F.when(inpatient, F.col("prior_end_date")))).alias(
                "days_since_previous_discharge"
            ),
        )
    )
    return (
        labels.select(
            "encounter_id",
            "patient_id_hashed",
            "discharge_date",
            "length_of_stay_days",
            F.col("duration_hours").alias("stay_duration_hours"),
            "readmission_30d",
            "label_observable",
            "days_to_readmission",
        )
        .join(
            general.drop("patient_id_hashed", "cutoff_date", "cutoff_ts").withColumnRenamed(
                "spine_id", "encounter_id"
            ),
            "encounter_id",
            "left",
        )
        .join(prior.withColumnRenamed("spine_id", "encounter_id"), "encounter_id", "left")
        .fillna(PRIOR_STAY_DEFAULTS)
        .withColumn("as_of_date", F.lit(as_of))
    )
