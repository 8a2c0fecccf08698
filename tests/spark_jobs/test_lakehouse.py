"""The lakehouse helpers that need no table: running independent actions side by side."""

from __future__ import annotations

import threading

import pytest

from spark_jobs.lakehouse import run_concurrently


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
