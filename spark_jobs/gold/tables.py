"""Reading gold back: which as-of date to read, and a table's slice for it."""

from __future__ import annotations

import datetime as dt
from typing import Literal

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from fhir_contract import table_path
from spark_jobs.lakehouse import JobSkipped, read_table, table_exists

LATEST = "latest"
AsOf = dt.date | Literal["latest"]


def as_of_argument(value: str) -> AsOf:
    """--as-of: YYYY-MM-DD, or `latest` (the newest gold as-of date)."""
    return value if value == LATEST else dt.date.fromisoformat(value)


def gold_as_of(spark: SparkSession, lakehouse: str, as_of: AsOf) -> dt.date:
    """The as-of date to read gold at: `as_of`, or for "latest" the newest one gold has.
    Raises JobSkipped while gold has no features yet (nothing to train on or score)."""
    path = table_path(lakehouse, "gold", "chronic_disease_features")
    if not table_exists(spark, path):
        raise JobSkipped(f"no gold features yet at {path}: fhir_batch_pipeline's gold_aggregate writes them")
    if as_of != LATEST:
        return as_of
    latest = read_table(spark, path).agg(F.max("as_of_date")).first()[0]
    if latest is None:
        raise JobSkipped(f"no gold features yet: {path} holds no rows")
    return latest


def gold_slice(spark: SparkSession, lakehouse: str, table: str, as_of: dt.date) -> DataFrame:
    """The rows of a gold snapshot table as of `as_of`."""
    return read_table(spark, table_path(lakehouse, "gold", table)).filter(F.col("as_of_date") == F.lit(as_of))
