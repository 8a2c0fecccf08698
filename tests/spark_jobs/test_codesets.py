"""The code-set loader: the clinical thresholds as declared in include/codesets/ and
as SPEC §5 states them, and a declaration it refuses."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from pyspark.sql import functions as F

from spark_jobs import codesets

INCLUDE = Path(__file__).resolve().parents[2] / "include"


def rule_on(spark, rule: str, rows: list[tuple]) -> list[bool]:
    """The rule's verdict on each row of values, one column per measure of the rule."""
    measures = codesets.clinical_rule(rule).measures
    values = [tuple(None if v is None else float(v) for v in row) for row in rows]
    frame = spark.createDataFrame(values, ", ".join(f"{m} double" for m in measures))
    return [r.met for r in frame.select(codesets.clinical_rule(rule).met(F.col).alias("met")).collect()]


def test_thresholds_are_specs_at_their_boundaries(spark):
    """SPEC §5: hypertension >= 140/90, tachycardia HR > 100, hypoxia SpO2 < 90,
    diabetes HbA1c >= 6.5 % or glucose >= 126 mg/dL, LDL >= 160, total cholesterol >= 240."""
    both_missing = (None, None)
    assert rule_on(spark, "hypertension", [(139, 89), (140, 60), (None, 90), both_missing]) == [
        False,
        True,
        True,
        False,
    ]
    assert rule_on(spark, "tachycardia", [(100,), (100.5,), (None,)]) == [False, True, False]
    assert rule_on(spark, "hypoxia", [(90,), (89.9,), (None,)]) == [False, True, False]
    assert rule_on(spark, "diabetes", [(6.4, 125), (6.5, None), (None, 126)]) == [False, True, True]
    assert rule_on(spark, "high_ldl", [(159,), (160,)]) == [False, True]
    assert rule_on(spark, "high_total_cholesterol", [(239,), (240,)]) == [False, True]
    assert codesets.clinical_rule("hypertension").window_days == 30
    assert codesets.clinical_rule("diabetes").window_days == 90


@pytest.fixture
def refused(tmp_path, monkeypatch):
    """refused(change, error): the loader rejects clinical_thresholds.json after
    `change(declared)` edits a copy of it, with an error matching `error`."""
    include = tmp_path / "include"
    shutil.copytree(INCLUDE / "codesets", include / "codesets")
    path = include / "codesets" / "clinical_thresholds.json"
    monkeypatch.setenv("FHIR_INCLUDE_DIR", str(include))

    def check(change, error: str) -> None:
        declared = json.loads((INCLUDE / "codesets" / "clinical_thresholds.json").read_text())
        change(declared)
        path.write_text(json.dumps(declared))
        codesets.load.cache_clear()
        codesets.clinical_rules.cache_clear()
        with pytest.raises(ValueError, match=error):
            codesets.clinical_rules()

    yield check
    codesets.load.cache_clear()
    codesets.clinical_rules.cache_clear()


@pytest.mark.parametrize(
    ("limit", "error"),
    [
        ({"measure": "glucoze", "at_least": 126, "unit": "mg/dL"}, "unknown measure 'glucoze'"),
        ({"measure": "glucose", "at_least": 7.0, "unit": "mmol/L"}, "glucose values are in 'mg/dL'"),
        ({"measure": "glucose", "at_least": 126, "above": 125, "unit": "mg/dL"}, "needs exactly one of"),
    ],
)
def test_a_bad_limit_is_refused_naming_where_it_is(refused, limit, error):
    def change(declared):
        declared["rules"]["diabetes"]["any_of"][1] = limit

    refused(change, r"rules\.diabetes\.any_of\[1\]: .*" + error)


def test_a_window_that_is_not_whole_days_is_refused(refused):
    def change(declared):
        declared["rules"]["hypertension"]["window_days"] = "30d"

    refused(change, r"rules\.hypertension\.window_days must be a whole number")


def test_a_rule_the_file_lacks_is_named_with_the_rules_it_has():
    with pytest.raises(KeyError, match=r"no rule 'obesity'; its rules are \[.*'diabetes'.*'hypertension'"):
        codesets.clinical_rule("obesity")
