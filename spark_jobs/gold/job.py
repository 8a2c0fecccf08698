"""The gold_aggregate job: every gold table as of one date, each replacing its slice.

The trend tables replace the days in (D - N, D], N = trend_days; the snapshot tables
carry as_of_date and replace their as-of slice.
"""

from __future__ import annotations

import datetime as dt
import logging

from pyspark.sql import SparkSession
from pyspark.sql import functions as F

from fhir_contract import table_path
from spark_jobs.gold.adherence import medication_adherence_features
from spark_jobs.gold.chronic import chronic_disease_features
from spark_jobs.gold.inputs import release, silver_inputs
from spark_jobs.gold.readmission import readmission_features
from spark_jobs.gold.trends import daily_measures, lab_trends, vital_trends
from spark_jobs.lakehouse import last_commit_metrics, overwrite_slice

log = logging.getLogger("fhir_lakehouse.gold")


def run(spark: SparkSession, *, lakehouse: str, as_of: dt.date, trend_days: int = 90) -> dict[str, int]:
    """Write the gold tables as of `as_of`; the rows written per table."""
    first_day = as_of - dt.timedelta(days=trend_days - 1)
    inputs = silver_inputs(spark, lakehouse)
    daily = daily_measures(inputs["measurements"].filter(F.col("observation_date") <= as_of)).cache()
    trend_slice = f"observation_date >= '{first_day}' AND observation_date <= '{as_of}'"
    as_of_slice = f"as_of_date = '{as_of}'"
    outputs = {
        "patient_vital_trends": (
            vital_trends(daily, first_day, as_of),
            trend_slice,
            ["observation_date"],
        ),
        "lab_result_trends": (
            lab_trends(daily, first_day, as_of),
            trend_slice,
            ["observation_date"],
        ),
        "chronic_disease_features": (
            chronic_disease_features(as_of, **inputs),
            as_of_slice,
            ["as_of_date"],
        ),
        "medication_adherence_features": (
            medication_adherence_features(inputs["medications"], as_of),
            as_of_slice,
            ["as_of_date"],
        ),
        "readmission_features": (
            readmission_features(as_of, **inputs),
            as_of_slice,
            ["as_of_date"],
        ),
    }
    counts = {}
    for table, (frame, slice_condition, partition_by) in outputs.items():
        path = table_path(lakehouse, "gold", table)
        overwrite_slice(frame, path, slice_condition, partition_by)
        # The overwrite wrote exactly the slice: its commit says how many rows (a count re-read them).
        counts[table] = last_commit_metrics(spark, path).get("numOutputRows", 0)
        log.info("Gold %s as of %s: %d rows", table, as_of, counts[table])
    daily.unpersist()
    release(inputs)
    return counts
