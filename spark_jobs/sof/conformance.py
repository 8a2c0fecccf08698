"""Runs the SQL on FHIR v2 conformance suite (files in the official `tests.schema.json`
format) and writes the report the official implementations table reads:
`{"<file>.json": {"tests": [{"name": ..., "result": {"passed": bool, "reason": ...}}]}}`.

All files run in one Spark session; a case's rows are compared with its `expect`
as a multiset (row order is not part of the contract), and `expectColumns` in order.
"""

from __future__ import annotations

import json
import logging
from collections import Counter
from pathlib import Path

from pyspark.sql import SparkSession

from spark_jobs.sof.compiler import ViewCompileError
from spark_jobs.sof.view import compile_view, view_rows

log = logging.getLogger(__name__)


def _normal(value):
    """JSON values comparable across Spark and the expected rows (5 == 5.0)."""
    if isinstance(value, bool) or value is None or isinstance(value, str):
        return value
    if isinstance(value, (int, float)):
        return float(value)
    if isinstance(value, dict):
        return {key: _normal(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_normal(item) for item in value]
    return str(value)


def _row_key(row: dict) -> str:
    return json.dumps(_normal(row), sort_keys=True)


def run_case(spark: SparkSession, resources, case: dict) -> tuple[bool, str]:
    """(passed, reason) of one test case over a DataFrame of resource texts."""
    expect_error = case.get("expectError", False)
    try:
        compiled = compile_view(case["view"], strict=False)
        frame = view_rows(resources, compiled)
        columns = list(frame.columns)
        rows = [row.asDict(recursive=True) for row in frame.collect()]
    except (ViewCompileError, ValueError, TypeError, KeyError) as exc:
        if expect_error:
            return True, f"error as expected: {exc}"
        return False, f"unexpected error: {exc}"
    except Exception as exc:  # a Spark run-time error (raise_error: several values where one is expected)
        if expect_error:
            return True, f"error as expected: {str(exc).splitlines()[0][:300]}"
        return False, f"unexpected error: {str(exc).splitlines()[0][:300]}"
    if expect_error:
        return False, f"expected an error, got {len(rows)} row(s)"
    if "expectColumns" in case and columns != case["expectColumns"]:
        return False, f"columns {columns} != expected {case['expectColumns']}"
    got, wanted = Counter(map(_row_key, rows)), Counter(map(_row_key, case.get("expect", [])))
    if got != wanted:
        missing = sorted((wanted - got).elements())[:3]
        extra = sorted((got - wanted).elements())[:3]
        return False, f"rows differ: missing {missing}, unexpected {extra}"
    return True, f"{len(rows)} row(s) as expected"


def run_suite(spark: SparkSession, folder: Path) -> dict:
    report = {}
    for path in sorted(Path(folder).glob("*.json")):
        suite = json.loads(path.read_text())
        if not isinstance(suite, dict) or "tests" not in suite:
            continue  # tests.schema.json and other non-test files
        texts = [(json.dumps(resource),) for resource in suite.get("resources", [])]
        resources = spark.createDataFrame(texts, "resource_json string").cache()
        results = []
        for case in suite["tests"]:
            passed, reason = run_case(spark, resources, case)
            results.append({"name": case["title"], "result": {"passed": passed, "reason": reason}})
            log.info("%s %s: %s", "PASS" if passed else "FAIL", f"{path.name} / {case['title']}", reason)
        resources.unpersist()
        report[path.name] = {"tests": results}
    return report


def summary(report: dict) -> tuple[int, int]:
    results = [test["result"]["passed"] for suite in report.values() for test in suite["tests"]]
    return sum(results), len(results) - sum(results)
