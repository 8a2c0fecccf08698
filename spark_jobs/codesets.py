"""The one loader for the code sets in include/codesets/ (value sets, unit
conversions, interpretation severities, geography rules)."""

from __future__ import annotations

import json
import os
from functools import cache
from pathlib import Path

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import types as T


def include_path(*parts: str) -> Path:
    """A file under include/. FHIR_INCLUDE_DIR points there when the jobs run from a
    zip shipped by spark-submit (its modules have no repository around them)."""
    root = os.environ.get("FHIR_INCLUDE_DIR") or Path(__file__).resolve().parent.parent / "include"
    return Path(root, *parts)


@cache
def load(name: str) -> dict:
    """Parsed JSON of include/codesets/<name>.json."""
    path = include_path("codesets", f"{name}.json")
    if not path.is_file():
        raise FileNotFoundError(f"code set {name!r} not found at {path}")
    return json.loads(path.read_text())


@cache
def resource_types() -> tuple[str, ...]:
    """FHIR R4 resource types (include/fhir/r4_resource_types.txt)."""
    lines = (line.strip() for line in include_path("fhir", "r4_resource_types.txt").read_text().splitlines())
    return tuple(line for line in lines if line and not line.startswith("#"))


def measures() -> dict[str, dict]:
    return load("observation_measures")["measures"]


def loinc_codes(measure: str) -> list[str]:
    return measures()[measure]["loinc"]


def measure_lookup(spark: SparkSession) -> DataFrame:
    """One row per LOINC code of a tracked measure: the measure, its unit, its
    ranges, and `conversions` (source UCUM unit -> factor/offset to that unit)."""
    rows = []
    for name, spec in measures().items():
        normal_low, normal_high = spec["normal_range"]
        critical_low, critical_high = spec["critical_range"]
        conversions = {
            unit: (float(c["factor"]), float(c.get("offset", 0.0))) for unit, c in spec["conversions"].items()
        }
        for code in spec["loinc"]:
            rows.append(
                (
                    code,
                    name,
                    spec["category"],
                    spec["unit"],
                    conversions,
                    _float(normal_low),
                    _float(normal_high),
                    _float(critical_low),
                    _float(critical_high),
                )
            )
    conversion = T.StructType(
        [T.StructField("factor", T.DoubleType()), T.StructField("offset", T.DoubleType())]
    )
    schema = T.StructType(
        [
            T.StructField("loinc_code", T.StringType()),
            T.StructField("measure", T.StringType()),
            T.StructField("measure_category", T.StringType()),
            T.StructField("measure_unit", T.StringType()),
            T.StructField("conversions", T.MapType(T.StringType(), conversion)),
            T.StructField("normal_low", T.DoubleType()),
            T.StructField("normal_high", T.DoubleType()),
            T.StructField("critical_low", T.DoubleType()),
            T.StructField("critical_high", T.DoubleType()),
        ]
    )
    return spark.createDataFrame(rows, schema)


def interpretation_severity() -> dict[str, str]:
    return load("observation_interpretation")["severity"]


def restricted_zip3() -> tuple[list[str], str]:
    geography = load("patient_geography")
    return geography["restricted_zip3"], geography["replacement_zip3"]


def _float(value) -> float | None:
    return None if value is None else float(value)


def condition_groups() -> dict[str, list[str]]:
    """Chronic condition group -> SNOMED codes."""
    return load("chronic_conditions")["groups"]


def medication_classes() -> dict[str, list[str]]:
    """Chronic medication class -> RxNorm codes."""
    return load("medication_classes")["classes"]
