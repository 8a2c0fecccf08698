"""medication_adherence_features: one row per patient with medications: counts,
durations and adherence_score = PDC x 100 over the last 180 days."""

from __future__ import annotations

import datetime as dt

from pyspark.sql import DataFrame, Window
from pyspark.sql import functions as F

from spark_jobs import codesets

ADHERENCE_DAYS = 180


def covered_days(intervals: DataFrame, keys: list[str]) -> DataFrame:
    """Days covered by the union of [start, end] date intervals, per key."""
    ordered = Window.partitionBy(*keys).orderBy("start", "end")
    previous_end = F.max("end").over(ordered.rowsBetween(Window.unboundedPreceding, -1))
    starts_run = previous_end.isNull() | (F.col("start") > F.date_add(previous_end, 1))
    runs = intervals.withColumn("run", F.sum(starts_run.cast("int")).over(ordered))
    merged = runs.groupBy(*keys, "run").agg(F.min("start").alias("start"), F.max("end").alias("end"))
    return merged.groupBy(*keys).agg(
        F.sum(F.datediff("end", "start") + 1).alias("days_covered"),
        F.min("start").alias("first_covered"),
    )


def medication_adherence_features(medications: DataFrame, as_of: dt.date) -> DataFrame:
    """PDC over the last 180 days, from the supply periods of chronic medications.

    Supply: a MedicationStatement's effective period (a fill); for a drug the patient
    has no statements of, a MedicationRequest's start + expectedSupplyDuration x
    (1 + repeats). Days covered by any chronic medication
    (include/codesets/medication_classes.json) are counted once; the denominator
    runs from the window start, or the first supply in it, to the as-of date.
    """
    window_start = as_of - dt.timedelta(days=ADHERENCE_DAYS - 1)
    chronic_codes = [c for codes in codesets.medication_classes().values() for c in codes]
    meds = medications.filter(F.col("start_date") <= as_of)
    active = (F.col("end_date") >= as_of) | (
        F.col("effective_end").isNull() & F.col("status").isin("active", "on-hold", "intended")
    )
    medication = F.coalesce(F.col("rxnorm_code"), F.col("code"), F.col("medication_reference"))
    summary = meds.groupBy("patient_id_hashed").agg(
        F.count_distinct(F.when(active, medication)).alias("active_medication_count"),
        F.count_distinct(F.when(F.col("status").isin("stopped", "completed") & ~active, medication)).alias(
            "stopped_medication_count"
        ),
        F.avg("duration_days").alias("avg_medication_duration_days"),
        F.count_distinct(medication).alias("unique_medications"),
        F.count("*").alias("medication_record_count"),
    )
    chronic = meds.filter(F.col("rxnorm_code").isin(*chronic_codes))
    statements = chronic.filter(F.col("source_resource_type") == "MedicationStatement")
    # A request's supply is what it lets the patient take: expectedSupplyDuration x
    # (1 + repeats) from its start (not the authorization window). Used only for drugs
    # without statements: statements report actual supply, and a renewed order that
    # was never filled must not count as covered.
    request_supply = F.col("expected_supply_days") * (1 + F.coalesce("number_of_repeats_allowed", F.lit(0)))
    requests = chronic.filter(F.col("source_resource_type") == "MedicationRequest").join(
        statements.select("patient_id_hashed", "rxnorm_code").distinct(),
        ["patient_id_hashed", "rxnorm_code"],
        "left_anti",
    )
    requests = requests.withColumn(
        "end_date",
        F.coalesce(F.date_add("start_date", (F.round(request_supply) - 1).cast("int")), F.col("end_date")),
    )
    supply = (
        statements.select("patient_id_hashed", "start_date", "end_date")
        .unionByName(requests.select("patient_id_hashed", "start_date", "end_date"))
        .filter(F.col("end_date").isNotNull())
        .select(
            "patient_id_hashed",
            F.greatest(F.col("start_date"), F.lit(window_start)).alias("start"),
            F.least(F.col("end_date"), F.lit(as_of)).alias("end"),
        )
        .filter(F.col("start") <= F.col("end"))
    )
    covered = covered_days(supply, ["patient_id_hashed"])
    denominator = F.datediff(F.lit(as_of), F.col("first_covered")) + 1
    return (
        summary.join(covered, "patient_id_hashed", "left")
        .withColumn("days_covered_180d", F.coalesce("days_covered", F.lit(0)))
        .withColumn(
            "adherence_score",
            F.when(
                F.col("first_covered").isNotNull(),
                F.round(F.col("days_covered") / denominator * 100, 2),
            ),
        )
        .drop("days_covered", "first_covered")
        .withColumn("as_of_date", F.lit(as_of))
    )
