"""A champion that keeps going without retraining pages on-call once per episode,
read from a real MLflow registry (SQLite store) as train_models leaves it."""

from __future__ import annotations

import json

import pytest
from fhir_pipeline import config
from fhir_pipeline.retraining import page_stale_champions

from spark_jobs import model_registry

INPUTS = {"as_of": "2026-11-20", "silver_observations_normalized": "3"}


@pytest.fixture
def registry(tmp_path, monkeypatch):
    """An MLflow registry holding `fhir_diabetes_risk` v1 as @champion; pages go to a log file."""
    from mlflow.tracking import MlflowClient

    pages = tmp_path / "pages.jsonl"
    monkeypatch.setenv("FHIR__ALERTS__CHANNELS", "log")
    monkeypatch.setenv("FHIR__ALERTS__LOG_PATH", str(pages))
    monkeypatch.setenv("FHIR__ML__PAGE_AFTER_RETRAIN_SKIPS", "2")
    config.settings.cache_clear()
    tracking_uri = f"sqlite:///{tmp_path}/mlflow.db"
    client = MlflowClient(tracking_uri=tracking_uri)
    client.create_registered_model("fhir_diabetes_risk")
    version = client.create_model_version("fhir_diabetes_risk", source=str(tmp_path / "model"))
    client.set_registered_model_alias("fhir_diabetes_risk", model_registry.CHAMPION, version.version)
    model_registry.record_trained(client, "fhir_diabetes_risk", INPUTS)
    yield client, tracking_uri, pages
    config.settings.cache_clear()


def paged(pages) -> list[dict]:
    return [json.loads(line) for line in pages.read_text().splitlines()] if pages.exists() else []


def test_a_champion_not_retrained_twice_in_a_row_pages_once(registry):
    client, tracking_uri, pages = registry
    reason = "not enough labelled rows to train and evaluate (sizes {'test': 3})"

    assert model_registry.record_not_retrained(client, "fhir_diabetes_risk", INPUTS, reason) == 1
    assert page_stale_champions(tracking_uri) == []
    assert model_registry.record_not_retrained(client, "fhir_diabetes_risk", INPUTS, reason) == 2
    assert page_stale_champions(tracking_uri) == ["fhir_diabetes_risk"]
    assert model_registry.record_not_retrained(client, "fhir_diabetes_risk", INPUTS, reason) == 3
    assert page_stale_champions(tracking_uri) == []  # the same episode pages once

    [page] = paged(pages)
    assert page["kind"] == "page" and "fhir_diabetes_risk" in page["subject"]
    assert "went 2 training runs in a row without retraining" in page["message"]
    assert reason in page["message"]

    # A successful retraining ends the episode: the next one pages again.
    model_registry.record_trained(client, "fhir_diabetes_risk", INPUTS)
    assert client.get_registered_model("fhir_diabetes_risk").tags[model_registry.SKIPS_TAG] == "0"
    for _ in range(2):
        model_registry.record_not_retrained(client, "fhir_diabetes_risk", INPUTS, reason)
    assert page_stale_champions(tracking_uri) == ["fhir_diabetes_risk"]
    assert len(paged(pages)) == 2


def test_a_model_without_a_champion_never_pages(registry):
    client, tracking_uri, pages = registry
    for _ in range(3):
        skips = model_registry.record_not_retrained(client, "fhir_readmission_30d", INPUTS, "too few rows")
        assert skips == 0
    assert model_registry.last_training_inputs(client, "fhir_readmission_30d") == INPUTS
    assert model_registry.champion_version(client, "fhir_readmission_30d") is None
    assert page_stale_champions(tracking_uri) == []
    assert paged(pages) == []
