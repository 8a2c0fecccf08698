"""The models' declarations (include/ml/models.json): what each model reads is what it
lists, and a wrong file or a feature gold lacks stops with a message naming it."""

from __future__ import annotations

import copy
import json

import pytest
from pyspark.sql import functions as F

from spark_jobs.codesets import include_path
from spark_jobs.gold.chronic import chronic_disease_features
from spark_jobs.gold.readmission import readmission_features
from spark_jobs.ml.datasets import build_dataset
from spark_jobs.ml.labels import LABEL, TrainingSources
from spark_jobs.ml.specs import ModelSpec, ModelSpecError, check_features, model_specs, parse_model_specs
from tests.spark_jobs.test_gold_aggregate import (
    AS_OF,
    CONDITIONS,
    ENCOUNTERS,
    MEASUREMENTS,
    MEDICATIONS,
    PATIENTS,
)


@pytest.fixture(scope="module")
def gold_frames(spark):
    """chronic_disease_features and readmission_features of no data: gold's columns."""
    inputs = {
        "patients": spark.createDataFrame([], PATIENTS),
        "measurements": spark.createDataFrame([], MEASUREMENTS),
        "encounters": spark.createDataFrame([], ENCOUNTERS),
        "conditions": spark.createDataFrame([], CONDITIONS),
        "medications": spark.createDataFrame([], MEDICATIONS),
    }
    return {
        "chronic_disease_features": chronic_disease_features(AS_OF, **inputs),
        "readmission_features": readmission_features(AS_OF, **inputs),
    }


def document() -> dict:
    return json.loads(include_path("ml", "models.json").read_text())


def test_each_declared_model_reads_columns_of_its_gold_table(gold_frames):
    specs = model_specs()
    assert {name: (s.source_table, s.label) for name, s in specs.items()} == {
        "fhir_diabetes_risk": ("chronic_disease_features", "diabetes_onset_within_horizon"),
        "fhir_readmission_30d": ("readmission_features", "readmission_30d"),
    }
    for spec in specs.values():
        check_features(spec, gold_frames[spec.source_table])
    assert "hypertension_risk_flag" in specs["fhir_diabetes_risk"].features
    assert "prior_inpatient_count_365d" in specs["fhir_readmission_30d"].features


def test_a_new_gold_column_is_no_model_input(gold_frames):
    spec = model_specs()["fhir_readmission_30d"]
    gold = gold_frames["readmission_features"].withColumn("new_score", F.lit(1.0))
    sources = TrainingSources(AS_OF, 365, {}, lambda table: gold)
    dataset = build_dataset(spec, sources)
    assert dataset.features == list(spec.features)
    assert dataset.rows.columns[: len(spec.features)] == list(spec.features)
    assert {"new_score", LABEL} <= set(dataset.rows.columns)


def test_a_listed_feature_gold_lacks_or_that_is_no_number_is_named(gold_frames):
    frame = gold_frames["chronic_disease_features"]
    missing = ModelSpec(
        "m", "u", "chronic_disease_features", "diabetes_onset_within_horizon", ("age_years", "avg_glucose_7d")
    )
    with pytest.raises(
        ModelSpecError, match="m: feature\\(s\\) missing from gold chronic_disease_features: avg_glucose_7d"
    ):
        check_features(missing, frame)
    text = ModelSpec("m", "u", "chronic_disease_features", "diabetes_onset_within_horizon", ("gender",))
    with pytest.raises(ModelSpecError, match="not numbers: gender \\(string\\)"):
        check_features(text, frame)


def _set(path: str, value):
    """A change to the declared document: `path` like "models.0.label"; value None deletes."""

    def change(doc: dict) -> None:
        *parents, key = path.split(".")
        node = doc
        for part in parents:
            node = node[int(part)] if isinstance(node, list) else node[part]
        if value is None:
            del node[key]
        else:
            node[key] = value

    return change


@pytest.mark.parametrize(
    ("change", "refusal"),
    [
        (_set("model", []), "unknown key\\(s\\) \\['model'\\]"),
        (_set("models.0.feature", ["age_years"]), "models\\[0\\]: unknown key\\(s\\) \\['feature'\\]"),
        (_set("models.1.label", None), "models\\[1\\]: missing key\\(s\\) \\['label'\\]"),
        (_set("models.0.label", "diabetes"), "unknown label 'diabetes'"),
        (
            _set("models.1.source_table", "chronic_disease_features"),
            "label readmission_30d labels rows of readmission_features, not chronic_disease_features",
        ),
        (
            _set("models.0.features", ["age_years", "diabetes_risk_flag"]),
            "\\['diabetes_risk_flag'\\] define label diabetes_onset_within_horizon",
        ),
        (_set("models.0.features", ["age_years", "age_years"]), "features listed twice: \\['age_years'\\]"),
        (_set("models.0.features", []), "features must be a non-empty list"),
        (_set("models.1.name", "fhir_diabetes_risk"), "model fhir_diabetes_risk is declared twice"),
        (_set("models", []), "declares no model"),
    ],
)
def test_a_wrong_declaration_is_refused_when_loaded(change, refusal):
    changed = copy.deepcopy(document())
    change(changed)
    with pytest.raises(ModelSpecError, match=refusal):
        parse_model_specs(changed)


def test_loading_a_file_names_it_in_the_refusal(tmp_path):
    path = tmp_path / "models.json"
    path.write_text(json.dumps({**document(), "extra": 1}))
    with pytest.raises(ModelSpecError, match=f"{path}: unknown key"):
        model_specs(path)
