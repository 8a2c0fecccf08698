"""Where a view's resources come from: FHIR NDJSON files, or bronze's `fhir_raw`."""

from __future__ import annotations

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from spark_jobs.lakehouse import PermanentJobError, read_table, table_exists, table_path


def read_resources(spark: SparkSession, source: str, resource_type: str) -> DataFrame:
    """`resource_json` texts that may hold `resource_type` (the view filters exactly).

    A lakehouse root reads the type's partition of bronze/fhir_raw, without deletes;
    a folder reads its `*.ndjson` files, only `<Type>*.ndjson` when named by type
    (a FHIR bulk export's layout).
    """
    raw = table_path(source.rstrip("/"), "bronze", "fhir_raw")
    if table_exists(spark, raw):
        return (
            read_table(spark, raw)
            .filter((F.col("resource_type") == resource_type) & ~F.col("is_delete"))
            .select("resource_json")
        )
    folder = source.rstrip("/")
    for pattern in (
        f"{folder}/{resource_type}.ndjson",
        f"{folder}/{resource_type}.*.ndjson",
        f"{folder}/*.ndjson",
    ):
        try:
            return spark.read.text(pattern).select(F.col("value").alias("resource_json"))
        except Exception as exc:  # noqa: BLE001 - Spark's AnalysisException for a path that matches nothing
            if "PATH_NOT_FOUND" not in str(exc):
                raise
    raise PermanentJobError(
        f"{source}: neither a lakehouse (no bronze/fhir_raw) nor a folder of *.ndjson files"
    )
