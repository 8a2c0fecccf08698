"""Where a view's resources come from: FHIR NDJSON files, or bronze's `fhir_raw`."""

from __future__ import annotations

from pyspark.sql import DataFrame, SparkSession, Window
from pyspark.sql import functions as F

from fhir_contract import table_path
from spark_jobs.lakehouse import PermanentJobError, read_table, table_exists


def read_resources(spark: SparkSession, source: str, resource_type: str) -> tuple[DataFrame, bool]:
    """`resource_json` texts that may hold `resource_type`, and whether all of them
    are of that type (else the view filters).

    A lakehouse root reads the type's partition of bronze/fhir_raw: each resource's
    newest version as silver orders them, none whose newest record is a delete; a
    folder reads its `*.ndjson` files, only `<Type>*.ndjson` when named by type (a
    FHIR bulk export's layout).
    """
    from spark_jobs.silver.changes import version_order

    raw = table_path(source.rstrip("/"), "bronze", "fhir_raw")
    if table_exists(spark, raw):
        records = read_table(spark, raw).filter(F.col("resource_type") == resource_type)
        newest_first = Window.partitionBy("resource_id").orderBy(version_order(records).desc())
        newest = records.withColumn("_rank", F.row_number().over(newest_first)).filter("_rank = 1")
        return newest.filter(~F.col("is_delete")).select("resource_json"), True
    folder = source.rstrip("/")
    for pattern in (
        f"{folder}/{resource_type}.ndjson",
        f"{folder}/{resource_type}.*.ndjson",
        f"{folder}/*.ndjson",
    ):
        try:
            return spark.read.text(pattern).select(F.col("value").alias("resource_json")), False
        except Exception as exc:  # noqa: BLE001 - Spark's AnalysisException for a path that matches nothing
            if "PATH_NOT_FOUND" not in str(exc):
                raise
    raise PermanentJobError(
        f"{source}: neither a lakehouse (no bronze/fhir_raw) nor a folder of *.ndjson files"
    )
