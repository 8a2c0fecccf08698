"""The quality gate's thresholds are validated when loaded, and every breach is named."""

from __future__ import annotations

import pytest
import yaml

from spark_jobs.codesets import include_path
from spark_jobs.quality.gate import breaches
from spark_jobs.quality.thresholds import ThresholdsError, load_thresholds, parse_thresholds


def shipped() -> dict:
    return yaml.safe_load(include_path("config", "quality.yaml").read_text())


def test_the_shipped_thresholds_load_typed():
    thresholds = load_thresholds()
    assert thresholds.bronze.max_quarantine_share == 0.05
    assert thresholds.silver.min_rows["observations_normalized"] == 1
    assert thresholds.gold.max_null_share["chronic_disease_features"]["gender"] == 0.05


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda t: t["silver"].update(max_rows={}), r"silver: unknown keys \['max_rows'\]"),
        (lambda t: t["bronze"].pop("min_records_read"), r"bronze: .*missing keys \['min_records_read'\]"),
        (
            lambda t: t["silver"]["max_invalid_share"].update(encounters_normalized=1.5),
            r"silver.max_invalid_share.encounters_normalized: expected a share in \[0, 1\], got 1.5",
        ),
        (lambda t: t["gold"]["min_rows"].update(risk_scores=-1), r"gold.min_rows.risk_scores: .*got -1"),
        (
            lambda t: t["gold"]["max_null_share"]["chronic_disease_features"].update(gender="5%"),
            r"gold.max_null_share.chronic_disease_features.gender: expected a share",
        ),
    ],
)
def test_a_bad_threshold_is_named_by_its_path(edit, message, tmp_path):
    thresholds = shipped()
    edit(thresholds)
    path = tmp_path / "quality.yaml"
    path.write_text(yaml.safe_dump(thresholds))
    with pytest.raises(ThresholdsError, match=message):
        load_thresholds(path)


def test_every_breach_is_named_with_its_value_and_limit():
    thresholds = parse_thresholds(shipped())
    values = {
        "bronze.records_read": 100,
        "bronze.quarantine_share": 0.2,
        "silver.patients_normalized.rows": 5,
        "silver.observations_normalized.rows": 0,
        "silver.observations_normalized.invalid_share": 0.0,
        "silver.encounters_normalized.invalid_share": 0.5,
        "gold.chronic_disease_features.rows": 5,
        "gold.chronic_disease_features.age_years.null_share": 0.0,
        "gold.chronic_disease_features.gender.null_share": 0.4,
    }
    assert breaches(values, thresholds) == [
        "bronze.quarantine_share = 0.2000 is above the maximum 0.05",
        "silver.observations_normalized.rows = 0 is below the minimum 1",
        "silver.encounters_normalized.invalid_share = 0.5000 is above the maximum 0.1",
        "gold.chronic_disease_features.gender.null_share = 0.4000 is above the maximum 0.05",
    ]
