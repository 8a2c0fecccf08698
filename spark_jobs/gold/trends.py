"""The daily trend tables: patient_vital_trends and lab_result_trends.

- patient_vital_trends: per patient and day, heart rate avg/min/max, BP, temperature,
  SpO2, respiratory rate and the day's flags (include/codesets/clinical_thresholds.json:
  hypertension: mean BP >= 140/90, tachycardia: mean HR > 100, hypoxia: mean SpO2 < 90).
- lab_result_trends: per patient, lab and day: the day's mean, 7/30/90-day means
  ending that day (over measurements), pct_change_7d_vs_30d, trend_direction
  (INCREASING when the 7-day mean is more than TREND_THRESHOLD_PCT = 5% above the
  30-day mean, DECREASING when more than 5% below, else STABLE) and
  days_since_abnormal (days since the latest abnormal result of that lab, that day included).
"""

from __future__ import annotations

import datetime as dt

from pyspark.sql import Column, DataFrame, Window
from pyspark.sql import functions as F

from spark_jobs import codesets
from spark_jobs.gold.measures import LABS, VITALS
from spark_jobs.gold.spine import day_number

TREND_THRESHOLD_PCT = 5.0


def daily_measures(measurements: DataFrame) -> DataFrame:
    """Per patient, measure and day: sum, count, min, max and whether any result was abnormal."""
    return measurements.groupBy("patient_id_hashed", "measure", "observation_date").agg(
        F.sum("value_numeric").alias("day_sum"),
        F.count("value_numeric").alias("day_count"),
        F.min("value_numeric").alias("day_min"),
        F.max("value_numeric").alias("day_max"),
        F.max(F.col("is_abnormal").cast("int")).alias("day_abnormal"),
    )


def vital_trends(daily: DataFrame, first_day: dt.date, as_of: dt.date) -> DataFrame:
    days = daily.filter(F.col("measure").isin(*VITALS) & F.col("observation_date").between(first_day, as_of))
    mean = F.col("day_sum") / F.col("day_count")
    wide = (
        days.groupBy("patient_id_hashed", "observation_date")
        .pivot("measure", list(VITALS))
        .agg(
            F.first(mean).alias("avg"),
            F.first("day_min").alias("min"),
            F.first("day_max").alias("max"),
        )
    )
    return wide.select(
        "patient_id_hashed",
        "observation_date",
        "heart_rate_avg",
        "heart_rate_min",
        "heart_rate_max",
        "bp_systolic_avg",
        "bp_diastolic_avg",
        "temperature_avg",
        "oxygen_saturation_avg",
        "respiratory_rate_avg",
        *[
            codesets.clinical_rule(flag).met(lambda measure: F.col(f"{measure}_avg")).alias(f"{flag}_flag")
            for flag in ("hypertension", "tachycardia", "hypoxia")
        ],
        F.lit(as_of).alias("as_of_date"),
    )


def lab_trends(daily: DataFrame, first_day: dt.date, as_of: dt.date) -> DataFrame:
    """Lab values per day with date-ranged rolling means over measurements (not days)."""
    labs = daily.filter(F.col("measure").isin(*LABS) & (F.col("observation_date") <= as_of))
    by_lab = Window.partitionBy("patient_id_hashed", "measure").orderBy(day_number(F.col("observation_date")))

    def rolling_mean(days: int) -> Column:
        frame = by_lab.rangeBetween(-(days - 1), 0)
        return F.sum("day_sum").over(frame) / F.sum("day_count").over(frame)

    last_abnormal = F.max(F.when(F.col("day_abnormal") == 1, F.col("observation_date"))).over(
        by_lab.rangeBetween(Window.unboundedPreceding, 0)
    )
    loinc = F.create_map(*[F.lit(x) for lab in LABS for x in (lab, codesets.loinc_codes(lab)[0])])
    trends = labs.select(
        "patient_id_hashed",
        "observation_date",
        F.col("measure").alias("lab"),
        loinc[F.col("measure")].alias("loinc_code"),
        (F.col("day_sum") / F.col("day_count")).alias("value_numeric"),
        rolling_mean(7).alias("value_7d_avg"),
        rolling_mean(30).alias("value_30d_avg"),
        rolling_mean(90).alias("value_90d_avg"),
        F.datediff(F.col("observation_date"), last_abnormal).alias("days_since_abnormal"),
    ).filter(F.col("observation_date") >= first_day)
    change = (F.col("value_7d_avg") - F.col("value_30d_avg")) / F.col("value_30d_avg") * 100
    return (
        trends.withColumn("pct_change_7d_vs_30d", F.when(F.col("value_30d_avg") != 0, change))
        .withColumn(
            "trend_direction",
            F.when(F.col("pct_change_7d_vs_30d") > TREND_THRESHOLD_PCT, "INCREASING")
            .when(F.col("pct_change_7d_vs_30d") < -TREND_THRESHOLD_PCT, "DECREASING")
            .otherwise("STABLE"),
        )
        .withColumn("as_of_date", F.lit(as_of))
    )
