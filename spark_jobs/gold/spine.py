"""The spine feature blocks hang on, and the date arithmetic of their windows.

A spine has one row per feature row: spine_id, patient_id_hashed, cutoff_date and
cutoff_ts (inclusive; null for an as-of date, see known_at_cutoff). Each feature block
joins a patient's data to its spine rows, keeps what is dated on or before the cutoff,
and aggregates per spine_id.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass

from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F


def in_window(date_column: Column, cutoff: Column, days: int) -> Column:
    """date in (cutoff - days, cutoff]."""
    return (date_column > F.date_sub(cutoff, days)) & (date_column <= cutoff)


def day_number(date_column: Column) -> Column:
    return F.datediff(date_column, F.lit(dt.date(1970, 1, 1)))


def known_at_cutoff(instant: Column, date: Column) -> Column:
    """An event on or before its spine row's cutoff: by instant when the cutoff is one (a
    discharge, `cutoff_ts`), else by the date recorded (an as-of date, `cutoff_ts` null)."""
    return F.coalesce(instant <= F.col("cutoff_ts"), date <= F.col("cutoff_date"))


def as_of_spine(patients: DataFrame, as_of: dt.date) -> DataFrame:
    """One spine row per patient, cut off at the end of `as_of`."""
    return patients.select(
        F.col("patient_id_hashed").alias("spine_id"),
        "patient_id_hashed",
        F.lit(as_of).alias("cutoff_date"),
        F.lit(None).cast("timestamp").alias("cutoff_ts"),
    )


def on_spine(spine: DataFrame, data: DataFrame) -> DataFrame:
    """Each spine row with every row of its patient's `data`."""
    return spine.select("spine_id", "patient_id_hashed", "cutoff_date", "cutoff_ts").join(
        data, "patient_id_hashed"
    )


def value_set(spark: SparkSession, sets: dict[str, list[str]], code: str, name: str) -> DataFrame:
    """(code, set name) rows of a code-set file; a code may belong to several sets."""
    return spark.createDataFrame(
        [(c, set_name) for set_name, codes in sets.items() for c in codes],
        f"{code} string, {name} string",
    )


@dataclass(frozen=True)
class FeatureBlock:
    """A pure block of features: (spine, its input) -> spine_id and feature columns, one
    row per spine row that has data of the block's kind. A spine row without any gets
    `when_absent()` in the columns it names (a count 0, a flag false: declared, never
    guessed from a name); every other column of the block stays null for it."""

    name: str
    source: str  # the input it reads, a key of inputs.silver_inputs
    features: Callable[[DataFrame, DataFrame], DataFrame]
    when_absent: Callable[[], dict[str, bool | int]]
