"""Reasons per score on tiny models where one known feature carries all the signal."""

from __future__ import annotations

import math
import random

import pytest
from pyspark.sql import functions as F

from spark_jobs.ml import reasons
from spark_jobs.ml.candidates import candidate_pipelines, scored
from spark_jobs.ml.labels import LABEL

FEATURES = ["noise_a", "signal", "noise_b"]


@pytest.fixture(scope="module")
def one_signal(spark):
    """600 patients: the label is 1 exactly when `signal` > 0.6; the noise features
    are independent of it; a tenth of noise_b is missing."""
    rng = random.Random(7)
    rows = []
    for index in range(600):
        signal, noise_a, noise_b = rng.random(), rng.random(), rng.random()
        rows.append((f"p{index}", noise_a, signal, None if index % 10 == 0 else noise_b, int(signal > 0.6)))
    return spark.createDataFrame(
        rows, f"patient_id_hashed string, noise_a double, signal double, noise_b double, {LABEL} int"
    )


@pytest.mark.parametrize("algorithm", ["xgboost", "logistic_regression"])
def test_the_reasons_name_the_one_feature_that_carries_the_signal(one_signal, algorithm):
    model = reasons.explaining(candidate_pipelines(FEATURES, seed=3)[algorithm].fit(one_signal))
    assert reasons.explainable(model)
    explained = reasons.with_reasons(model, scored(model, one_signal), FEATURES)
    rows = explained.select("signal", "noise_b", "raw_score", reasons.REASONS_COLUMN).collect()
    assert all(len(r.reasons) == len(FEATURES) for r in rows)  # 3 features: every one ranked
    # Far from the decision boundary the signal moves the score most, in its direction.
    clear = [r for r in rows if abs(r.signal - 0.6) > 0.2]
    assert clear and all(r.reasons[0].feature == "signal" for r in clear)
    assert all((r.reasons[0].contribution > 0) == (r.signal > 0.6) for r in clear)
    for r in rows:
        ranked = [abs(reason.contribution) for reason in r.reasons]
        assert ranked == sorted(ranked, reverse=True)
        by_feature = {reason.feature: reason.value for reason in r.reasons}
        assert by_feature["signal"] == r.signal and by_feature["noise_b"] == r.noise_b  # as read


def test_contributions_and_the_expected_log_odds_add_up_to_each_rows_log_odds(one_signal):
    """TreeSHAP's exactness: the three contributions plus one constant (the bias) give
    the classifier's log-odds of every row."""
    model = reasons.explaining(candidate_pipelines(FEATURES, seed=3)["xgboost"].fit(one_signal))
    explained = reasons.with_reasons(model, scored(model, one_signal), FEATURES)
    biases = set()
    for r in explained.select("raw_score", reasons.REASONS_COLUMN).collect():
        log_odds = math.log(r.raw_score / (1 - r.raw_score))
        biases.add(round(log_odds - sum(reason.contribution for reason in r.reasons), 4))
    assert len(biases) == 1, biases


def test_the_logistic_contribution_is_the_coefficient_times_the_standardized_value(one_signal):
    model = reasons.explaining(candidate_pipelines(FEATURES, seed=3)["logistic_regression"].fit(one_signal))
    scaler, estimator = model.stages[2], model.stages[3]
    mean, std = scaler.mean.toArray()[1], scaler.std.toArray()[1]
    coefficient = estimator.coefficients.toArray()[1]
    row = reasons.with_reasons(model, scored(model, one_signal), FEATURES).filter(
        F.col("patient_id_hashed") == "p1"
    )
    [first] = row.collect()
    [signal] = [r for r in first.reasons if r.feature == "signal"]
    assert signal.contribution == pytest.approx(coefficient * (first.signal - mean) / std)


def test_a_model_without_exact_contributions_gives_no_reasons(one_signal):
    """A champion registered before reasons (a random forest, which has none) is still scored."""
    from pyspark.ml import Pipeline
    from pyspark.ml.classification import RandomForestClassifier

    prepare = candidate_pipelines(FEATURES, seed=3)["logistic_regression"].getStages()[:2]
    forest = RandomForestClassifier(labelCol=LABEL, featuresCol="features", numTrees=5, seed=3)
    model = Pipeline(stages=[*prepare, forest]).fit(one_signal)
    assert not reasons.explainable(model)
    explained = reasons.with_reasons(model, scored(model, one_signal), FEATURES)
    assert explained.filter(F.col(reasons.REASONS_COLUMN).isNotNull()).isEmpty()
