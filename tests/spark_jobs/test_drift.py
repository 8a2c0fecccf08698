"""Drift measures on tiny frames, against hand-computed values (the scoring run's use of
them, end to end with a page: tests/spark_jobs/test_train_models.py)."""

from __future__ import annotations

import datetime as dt
import math

import pytest
from pyspark.sql import functions as F

from spark_jobs.ml import drift

DAY = dt.date(2026, 11, 20)


def test_a_value_falls_in_the_bin_of_the_edges_it_exceeds_and_missing_in_its_own(spark):
    frame = spark.createDataFrame(
        [(None,), (float("nan"),), (0.5,), (1.0,), (1.5,), (2.0,), (3.0,)], "x double"
    )
    bins = frame.select(drift.bin_index(F.col("x"), [1.0, 2.0]).alias("bin")).collect()
    assert [r.bin for r in bins] == [-1, -1, 0, 0, 1, 1, 2]


def test_the_reference_holds_decile_edges_and_the_share_of_each_bin(spark):
    frame = spark.createDataFrame(
        [(float(x), None if x < 25 else 1.0, None) for x in range(100)], "x double, flag double, empty double"
    )
    reference = drift.reference_distribution(frame)
    assert reference["rows"] == 100
    x = reference["measures"]["x"]
    assert x["edges"] == [9.0, 19.0, 29.0, 39.0, 49.0, 59.0, 69.0, 79.0, 89.0]
    assert x["missing"] == 0 and x["bins"] == [0.1] * 10
    # A constant column has one edge; values equal to it are in bin 0.
    assert reference["measures"]["flag"] == {"edges": [1.0], "missing": 0.25, "bins": [0.75, 0.0]}
    assert reference["measures"]["empty"] == {"edges": [], "missing": 1.0, "bins": [0.0]}


def test_psi_matches_the_hand_computed_value():
    reference = {"missing": 0.0, "bins": [0.5, 0.5]}
    assert drift.psi(reference, reference) == 0
    expected = (0.25 - 0.5) * math.log(0.25 / 0.5) + (0.75 - 0.5) * math.log(0.75 / 0.5)
    assert drift.psi(reference, {"missing": 0.0, "bins": [0.25, 0.75]}) == pytest.approx(expected)
    assert expected == pytest.approx(0.2747, abs=1e-4)
    # An empty bin counts at SHARE_FLOOR, so the index stays finite.
    emptied = drift.psi(reference, {"missing": 0.0, "bins": [0.0, 1.0]})
    floor = drift.SHARE_FLOOR
    assert emptied == pytest.approx((floor - 0.5) * math.log(floor / 0.5) + 0.5 * math.log(2))


def test_only_the_shifted_column_moves_its_psi(spark):
    rows = [(float(x), float(x % 7)) for x in range(1000)]
    frame = spark.createDataFrame(rows, "age double, visits double")
    reference = drift.reference_distribution(frame)
    assert drift.population_psi(frame, reference) == (1000, {"age": 0.0, "visits": 0.0})
    count, shifted = drift.population_psi(frame.withColumn("age", F.col("age") + 300), reference)
    assert count == 1000
    assert shifted["visits"] == 0.0
    assert shifted["age"] > 1.0


def test_a_drift_episode_pages_once_from_its_first_run_to_its_end():
    """Runs in order: fine, drifting (pages), still drifting (no page, same start day),
    fine (episode over), drifting again (pages); too few rows never drifts."""
    psi_by_run = [{"age": 0.02}, {"age": 0.4}, {"age": 0.5}, {"age": 0.05}, {"age": 0.3}]
    previous: dict[str, dt.date] = {}
    pages, since = [], []
    for offset, psis in enumerate(psi_by_run):
        day = DAY + dt.timedelta(days=offset)
        checks = drift.drift_checks(psis, previous, threshold=0.25, judged=True, as_of=day)
        pages.append(drift.starts_episode(checks, previous))
        since.append(checks[0].drifting_since)
        previous = {c.measure: c.drifting_since for c in checks if c.drifted}
    assert pages == [False, True, False, False, True]
    assert since == [None, DAY + dt.timedelta(1), DAY + dt.timedelta(1), None, DAY + dt.timedelta(4)]
    [unjudged] = drift.drift_checks({"age": 3.0}, {}, threshold=0.25, judged=False, as_of=DAY)
    assert not unjudged.drifted and unjudged.psi == 3.0


def test_the_page_names_the_drifting_measures_largest_first():
    checks = [
        drift.DriftCheck("age_years", 0.31, True, DAY),
        drift.DriftCheck("last_hba1c", 0.05, False, None),
        drift.DriftCheck("risk_score", 0.9, True, DAY),
    ]
    page = drift.drift_page("fhir_diabetes_risk", "3", DAY, checks, 0.25)
    assert page["subject"] == "[FHIR pipeline] population drift: fhir_diabetes_risk"
    assert "fhir_diabetes_risk v3 as of 2026-11-20" in page["message"]
    assert "(risk_score PSI 0.90, age_years PSI 0.31; PSI threshold 0.25)" in page["message"]
    assert "last_hba1c" not in page["message"]
