"""The lakehouse helpers that need no table: running independent actions side by side,
and how a job's end reaches the orchestrator."""

from __future__ import annotations

import threading

import pytest

from fhir_contract import EXIT_PERMANENT, EXIT_SKIPPED, PERMANENT_ERROR_PREFIX, SKIPPED_ERROR_PREFIX
from spark_jobs.bronze.landing import LandingError
from spark_jobs.lakehouse import (
    JobSkipped,
    PermanentJobError,
    overwrite_slice,
    read_table,
    run_concurrently,
    run_job,
)


def test_run_concurrently_returns_each_result_by_name_and_runs_side_by_side():
    both_started = threading.Barrier(2, timeout=10)

    def action(value):
        both_started.wait()  # deadlocks (and times out) unless both run at once
        return value * 2

    assert run_concurrently({"a": lambda: action(1), "b": lambda: action(5)}, max_workers=2) == {
        "a": 2,
        "b": 10,
    }


def test_run_concurrently_finishes_every_action_then_raises_the_first_failure(caplog):
    finished = []

    def fails(message):
        raise ValueError(message)

    def succeeds():
        finished.append("ok")
        return "ok"

    with pytest.raises(ValueError, match="first"):
        run_concurrently(
            {"x": lambda: fails("first"), "y": succeeds, "z": lambda: fails("second")}, max_workers=1
        )
    assert finished == ["ok"]
    assert "z failed too: second" in caplog.text


def _ending(error: Exception):
    def main():
        raise error

    return main


@pytest.mark.parametrize(
    ("error", "status"),
    [(JobSkipped("no gold features yet"), EXIT_SKIPPED), (LandingError("no landing folder"), EXIT_PERMANENT)],
)
def test_with_spark_submit_a_job_ends_with_the_status_the_orchestrator_reads(error, status):
    with pytest.raises(SystemExit) as ended:
        run_job(_ending(error))
    assert ended.value.code == status


@pytest.mark.parametrize(
    ("error", "prefix"),
    [
        (JobSkipped("no gold features yet"), SKIPPED_ERROR_PREFIX),
        (LandingError("no folder"), PERMANENT_ERROR_PREFIX),
    ],
)
def test_on_databricks_a_job_ends_with_an_error_named_by_its_base_class(monkeypatch, error, prefix):
    """The run's error is "<class>: <message>"; a subclass (LandingError) reads as its base."""
    monkeypatch.setenv("DATABRICKS_RUNTIME_VERSION", "17.3")
    with pytest.raises((JobSkipped, PermanentJobError)) as raised:
        run_job(_ending(error))
    assert f"{type(raised.value).__name__}: {raised.value}".startswith(prefix)
    assert str(raised.value) == str(error)


def test_a_slice_with_a_new_column_adds_it_and_leaves_the_other_slices(spark, tmp_path):
    """A release that adds a column (gold/risk_scores' reasons) writes into the existing table."""
    path = str(tmp_path / "scores")
    overwrite_slice(
        spark.createDataFrame([("d1", 0.2)], "day string, score double"), path, "day = 'd1'", ["day"]
    )
    added = spark.createDataFrame([("d2", 0.4, "age")], "day string, score double, reason string")
    overwrite_slice(added, path, "day = 'd2'", ["day"])
    assert sorted(map(tuple, read_table(spark, path).select("day", "score", "reason").collect())) == [
        ("d1", 0.2, None),
        ("d2", 0.4, "age"),
    ]
    retyped = spark.createDataFrame([("d3", "high")], "day string, score string")
    with pytest.raises(Exception, match="(?i)merge|incompatible|schema"):
        overwrite_slice(retyped, path, "day = 'd3'", ["day"])
