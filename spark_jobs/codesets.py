"""The one loader for the code sets in include/codesets/ (value sets, unit
conversions, interpretation severities, geography rules, clinical thresholds)."""

from __future__ import annotations

import json
import operator
import os
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache, reduce
from pathlib import Path

from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql import types as T

from fhir_contract import INCLUDE_ARCHIVE


def include_path(*parts: str) -> Path:
    """A file under include/: FHIR_INCLUDE_DIR if set, else the repository's beside this
    package, else (the jobs run from a zip shipped by spark-submit, with no repository
    around them) the copy shipped with `--archives <zip>#include` (fhir_contract.INCLUDE_ARCHIVE),
    which Spark unpacks on the driver and every executor."""
    configured = os.environ.get("FHIR_INCLUDE_DIR")
    if configured:
        return Path(configured, *parts)
    beside = Path(__file__).resolve().parent.parent / "include"
    return Path(beside if beside.is_dir() else _shipped_include() or beside, *parts)


def _shipped_include() -> Path | None:
    from pyspark import SparkContext, SparkFiles

    if not (SparkFiles._is_running_on_worker or SparkContext._active_spark_context):
        return None
    folder = Path(SparkFiles.getRootDirectory(), INCLUDE_ARCHIVE)
    return folder if folder.is_dir() else None


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


COMPARISONS = {"at_least": operator.ge, "above": operator.gt, "below": operator.lt, "at_most": operator.le}


@dataclass(frozen=True)
class Limit:
    measure: str
    comparison: str  # a key of COMPARISONS
    value: float


@dataclass(frozen=True)
class ClinicalRule:
    name: str
    limits: tuple[Limit, ...]  # met when any is
    window_days: int | None  # the mean's window in gold's risk flags

    @property
    def measures(self) -> list[str]:
        return [limit.measure for limit in self.limits]

    def met(self, value_of: Callable[[str], Column]) -> Column:
        """True when any limit is met by `value_of(measure)`; a missing value meets none."""
        met = [
            F.coalesce(
                COMPARISONS[limit.comparison](value_of(limit.measure), F.lit(limit.value)), F.lit(False)
            )
            for limit in self.limits
        ]
        return reduce(operator.or_, met)


@cache
def clinical_rules() -> dict[str, ClinicalRule]:
    """include/codesets/clinical_thresholds.json, checked: each limit names a known
    measure in its canonical unit and exactly one comparison."""
    known = measures()
    rules = {}
    for name, rule in load("clinical_thresholds")["rules"].items():
        limits = []
        for i, limit in enumerate(rule["any_of"]):
            where = f"clinical_thresholds.json: rules.{name}.any_of[{i}]"
            measure = limit.get("measure")
            if measure not in known:
                raise ValueError(f"{where}: unknown measure {measure!r} (observation_measures.json)")
            unit = known[measure]["unit"]
            if limit.get("unit") != unit:
                raise ValueError(f"{where}: unit {limit.get('unit')!r}, but {measure} values are in {unit!r}")
            comparisons = [key for key in COMPARISONS if key in limit]
            if len(comparisons) != 1:
                raise ValueError(f"{where}: needs exactly one of {sorted(COMPARISONS)}, has {comparisons}")
            limits.append(Limit(measure, comparisons[0], float(limit[comparisons[0]])))
        if not limits:
            raise ValueError(f"clinical_thresholds.json: rules.{name} has no limit")
        window = rule.get("window_days")
        if window is not None and (not isinstance(window, int) or window < 1):
            raise ValueError(
                f"clinical_thresholds.json: rules.{name}.window_days must be a whole number of days"
            )
        rules[name] = ClinicalRule(name, tuple(limits), window)
    return rules


def clinical_rule(name: str) -> ClinicalRule:
    """One rule of include/codesets/clinical_thresholds.json, by name."""
    rules = clinical_rules()
    if name not in rules:
        raise KeyError(f"clinical_thresholds.json has no rule {name!r}; its rules are {sorted(rules)}")
    return rules[name]
