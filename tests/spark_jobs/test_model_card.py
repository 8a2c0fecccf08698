"""The model card's numbers by hand (spark_jobs/ml/model_card.py): AUC with ties, the
bootstrap interval, subgroups by sex and age bucket, and what the card says."""

from __future__ import annotations

import pytest
from pyspark.sql import Row

from spark_jobs.ml.labels import LABEL
from spark_jobs.ml.model_card import bootstrap_interval, model_card, rows_auc, subgroups


def rows(*values: tuple) -> list[Row]:
    return [Row(score=s, **{LABEL: y}, is_male=m, age_years=a) for s, y, m, a in values]


def test_auc_counts_ties_half_and_needs_both_outcomes():
    # Positives 0.9 and 0.5, negatives 0.5 and 0.1: pairs (0.9>0.5, 0.9>0.1, 0.5=0.5, 0.5>0.1) = 3.5 / 4.
    test = rows((0.9, 1, 1.0, 30), (0.5, 1, 0.0, 50), (0.5, 0, 1.0, 70), (0.1, 0, 0.0, 20))
    assert rows_auc(test) == pytest.approx(0.875)
    assert rows_auc(test[:2]) is None


def test_bootstrap_interval_brackets_the_metric_and_is_reproducible():
    test = rows(*[(i / 100, int(i > 40), 1.0, 50) for i in range(100)])
    interval = bootstrap_interval(test, rows_auc, seed=7)
    assert interval == bootstrap_interval(test, rows_auc, seed=7)
    assert interval[0] <= 1.0 == rows_auc(test) == interval[1]  # every resample separates perfectly
    assert bootstrap_interval(test[:40], rows_auc, seed=7) is None  # negatives only


def test_subgroups_by_sex_and_age_bucket():
    test = rows((0.9, 1, 1.0, 30), (0.5, 1, 0.0, 50), (0.5, 0, 1.0, 70), (0.1, 0, None, None))
    sizes = {name: len(members) for name, members in subgroups(test).items()}
    assert sizes == {
        "age: 40-64": 1,
        "age: 65 and over": 1,
        "age: under 40": 1,
        "age: unknown": 1,
        "sex: female": 1,
        "sex: male": 2,
        "sex: unknown": 1,
    }


def test_the_card_states_population_metrics_subgroups_calibration_and_limits():
    test = rows(*[(i / 60, int(i % 3 == 0), float(i % 2), 30 + i) for i in range(60)])
    arguments = dict(
        model_name="fhir_diabetes_risk",
        version="3",
        as_of="2026-11-20",
        label_definition="new diabetes within 365 days",
        algorithm="xgboost",
        sizes={"train": 180, "validation": 60, "test": 60},
        positives={"train": 60, "validation": 20, "test": 20},
        data_versions={"silver_patients_normalized": 4},
        test_rows=test,
        threshold=0.42,
        calibration="isotonic",
        brier={"uncalibrated": 0.2, "calibrated": 0.18},
        importances={"last_hba1c": 0.5, "age_years": 0.3},
        seed=42,
    )
    card = model_card(**arguments)
    assert card.startswith("# fhir_diabetes_risk version 3\n")
    assert "test 60 / 20" in card and "silver_patients_normalized v4" in card
    assert f"| AUC | {rows_auc(test):.3f} |" in card
    assert "| sex: male | 30 | 10 | 0." in card  # odd i: 30 rows, every third a positive
    assert "| age: under 40 | 10 | 4 | too few | too few |" in card
    assert "Kept: isotonic" in card and "0.1800" in card
    assert "- last_hba1c: 0.500" in card
    assert "## Known limits" in card
    one_positive = rows(*[(i / 40, int(i == 39), 1.0, 50) for i in range(40)])
    assert "| sex: male | 40 | 1 | too few | too few |" in model_card(
        **{**arguments, "test_rows": one_positive}
    )
