"""Calibration (spark_jobs/ml/calibration.py) on tiny frames: the Brier score and the
reliability curve by hand, and an isotonic stage that serves the calibrated probability
wherever a model's score is read (training's metrics and the scoring job)."""

from __future__ import annotations

import datetime as dt

import pytest
from pyspark.sql import Row
from pyspark.sql import functions as F

from spark_jobs.ml.calibration import CALIBRATED_SCORE, brier_score, calibrated, reliability_curve
from spark_jobs.ml.candidates import candidate_pipelines, classifier, scored
from spark_jobs.ml.labels import LABEL
from spark_jobs.ml.scoring import predictions, score_rows


def rows(*pairs: tuple[float, int]) -> list[Row]:
    return [Row(score=score, **{LABEL: label}) for score, label in pairs]


def test_brier_score_and_reliability_curve_by_hand():
    test = rows((0.1, 0), (0.15, 0), (0.8, 1), (0.85, 0), (0.9, 1), (1.0, 1))
    # (0.01 + 0.0225 + 0.04 + 0.7225 + 0.01 + 0) / 6
    assert brier_score(test) == pytest.approx(0.805 / 6)
    assert reliability_curve(test) == [
        {"bin": 1, "mean_score": pytest.approx(0.125), "observed_rate": 0.0, "rows": 2},
        {"bin": 8, "mean_score": pytest.approx(0.825), "observed_rate": 0.5, "rows": 2},
        {"bin": 9, "mean_score": pytest.approx(0.95), "observed_rate": 1.0, "rows": 2},  # 1.0 in the last bin
    ]


@pytest.fixture(scope="module")
def overconfident(spark):
    """A logistic regression on x (eight rows at each of eight values, labels by value
    0 0 1 0 | 1 1 0 1): its probabilities rise with x; the observed rates do not."""
    data = [
        (float(x), int(label), f"p{i}")
        for i, (x, label) in enumerate(
            [(-2, 0), (-1.5, 0), (-1, 1), (-0.5, 0), (0.5, 1), (1, 1), (1.5, 0), (2, 1)] * 8
        )
    ]
    frame = spark.createDataFrame(data, f"x double, {LABEL} int, patient_id_hashed string")
    model = candidate_pipelines(["x"], seed=1)["logistic_regression"].fit(frame)
    return model, frame


def test_the_isotonic_stage_is_no_worse_on_the_rows_it_was_fitted_on_and_keeps_the_order(overconfident):
    model, frame = overconfident
    both = calibrated(model, frame)
    assert classifier(both) is classifier(model)
    raw = scored(model, frame).select("score", LABEL).collect()
    fitted = scored(both, frame).select("raw_score", "score", LABEL).collect()
    # Isotonic regression minimises squared error among monotone maps, the identity included.
    assert brier_score(fitted) <= brier_score(raw)
    # Pooled by x: -2, -1.5 -> 0; -1, -0.5 -> 1/2; 0.5, 1, 1.5 -> 2/3; 2 -> 1, so the squared
    # errors per value are 0, 0, 1/4, 1/4, 1/9, 1/9, 4/9, 0: a mean of 7/48.
    assert brier_score(fitted) == pytest.approx(7 / 48)
    ordered = sorted(fitted, key=lambda r: r.raw_score)
    assert all(a.score <= b.score for a, b in zip(ordered, ordered[1:], strict=False))


def test_scoring_serves_the_calibrated_probability(overconfident):
    model, frame = overconfident
    both = calibrated(model, frame)
    served = score_rows(
        predictions(both, frame), model_name="m", version="1", threshold=0.5, as_of=dt.date(2026, 11, 20)
    )
    expected = both.transform(frame).select("patient_id_hashed", CALIBRATED_SCORE)
    joined = served.join(expected, "patient_id_hashed")
    assert joined.filter(F.col("risk_score") != F.col(CALIBRATED_SCORE)).isEmpty()
    values = sorted(r.risk_score for r in served.select("risk_score").distinct().collect())
    assert values == pytest.approx([0.0, 0.5, 2 / 3, 1.0])
