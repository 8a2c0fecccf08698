"""The floor for silver Observation: the least any Spark normaliser must do.

    python -m bench.floor --input F [F ...] --out DIR

Reads the Observation NDJSON with a hand-typed explicit schema (the one silver
parsed with before its views), flattens the columns of bench/observation_view.json (one row per
observation plus one per component, as the Pathling peer) and writes Parquet.
No versioning, no hashing, no unit normalisation, no Delta. Prints one JSON
line: rows, seconds (read to written, the JVM start excluded).
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable

from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql import types as T

from spark_jobs.session import build_spark_session, without_parquet_dictionary


def _struct(**fields: T.DataType) -> T.StructType:
    return T.StructType([T.StructField(name, dtype) for name, dtype in fields.items()])


S, D = T.StringType(), T.DoubleType()
CODING = _struct(system=S, code=S, display=S)
_CODE = _struct(coding=T.ArrayType(_struct(code=S)))
_RANGE_LIMIT = _struct(value=D, unit=S, code=S)
_VALUE_FIELDS = dict(
    valueQuantity=_struct(value=D, unit=S, code=S, comparator=S),
    valueCodeableConcept=_struct(coding=T.ArrayType(CODING)),
    valueString=S,
    valueBoolean=T.BooleanType(),
    valueInteger=T.LongType(),
    dataAbsentReason=_struct(coding=T.ArrayType(_struct(code=S)), text=S),
    interpretation=T.ArrayType(_CODE),
    referenceRange=T.ArrayType(_struct(low=_RANGE_LIMIT, high=_RANGE_LIMIT)),
)
OBSERVATION = _struct(
    id=S,
    status=S,
    category=T.ArrayType(_CODE),
    code=_struct(coding=T.ArrayType(CODING)),
    subject=_struct(reference=S),
    encounter=_struct(reference=S),
    effectiveDateTime=S,
    effectiveInstant=S,
    effectivePeriod=_struct(start=S),
    issued=S,
    component=T.ArrayType(_struct(code=_struct(coding=T.ArrayType(CODING)), **_VALUE_FIELDS)),
    **_VALUE_FIELDS,
)


def first(array: Column) -> Column:
    """The first element of an array, null when the array is empty or null (ANSI-safe)."""
    return F.get(array, 0)


def first_coding(concept: Column) -> Column:
    return first(concept["coding"])


def _first_code(concept: Column, field: str) -> Column:
    return first_coding(concept)[field]


def _measurement(source: Column) -> Column:
    return F.struct(
        _first_code(source["code"], "system").alias("code_system"),
        _first_code(source["code"], "code").alias("code"),
        _first_code(source["code"], "display").alias("code_display"),
        _first_code(source["valueCodeableConcept"], "code").alias("value_code"),
        _first_code(first(source["interpretation"]), "code").alias("interpretation_code"),
        source["valueQuantity"]["value"].alias("value"),
        source["valueQuantity"]["code"].alias("value_unit"),
    )


def flatten_observations(observations: DataFrame) -> DataFrame:
    """Parsed Observation resources -> the benchmark view's rows."""
    o = F.col("o")
    own = F.struct(*[o[f].alias(f) for f in ("code", *_VALUE_FIELDS)])
    # Indexes exploded and picked by position: lambdas would run outside whole-stage codegen.
    index = F.col("_index")
    exploded = observations.withColumn(
        "_index", F.explode(F.sequence(F.lit(0), F.size(F.coalesce(o["component"], F.array()))))
    )
    source = F.when(index == 0, own).otherwise(F.get(o["component"], index - 1))
    measurements = exploded.withColumn("m", _measurement(source))
    return measurements.select(
        o["id"].alias("observation_id"),
        o["status"].alias("status"),
        _first_code(first(o["category"]), "code").alias("category"),
        _first_code(o["code"], "code").alias("panel_code"),
        o["subject"]["reference"].alias("patient_reference"),
        o["encounter"]["reference"].alias("encounter_reference"),
        o["effectiveDateTime"].alias("effective"),
        o["issued"].alias("issued"),
        "m.*",
    )


def timed_to_parquet(app_name: str, flatten: Callable[[SparkSession, list[str]], DataFrame]) -> None:
    """The CLI of a flattening reference: --input files -> `flatten` -> Parquet in --out;
    prints one JSON line, rows and seconds (read to written, the JVM start excluded)."""
    parser = argparse.ArgumentParser(prog=app_name)
    parser.add_argument("--input", nargs="+", required=True, help="Observation NDJSON files")
    parser.add_argument("--out", required=True, help="Parquet output folder")
    args = parser.parse_args()
    # The Parquet setting silver writes its row ids with, so the references write as well.
    spark = build_spark_session(
        app_name, {"spark.ui.enabled": "false", **without_parquet_dictionary(["observation_id"])}
    )
    started = time.perf_counter()
    flatten(spark, args.input).write.mode("overwrite").parquet(args.out)
    seconds = time.perf_counter() - started
    rows = spark.read.parquet(args.out).count()
    print(json.dumps({"rows": rows, "seconds": round(seconds, 2)}))


def _floor(spark: SparkSession, files: list[str]) -> DataFrame:
    parsed = spark.read.schema(OBSERVATION).json(files)
    return flatten_observations(parsed.select(F.struct("*").alias("o")))


def main() -> None:
    timed_to_parquet("bench-floor", _floor)


if __name__ == "__main__":
    main()
