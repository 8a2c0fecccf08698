"""A job's summary (fhir_contract.job_summary_path) reaches on-call from the Airflow side:
each page it holds goes out through the notifier factory, and a job that wrote none
(skipped, or nothing to say) pages nobody. What goes into a summary is the job's
business (tests/spark_jobs/test_train_models.py)."""

from __future__ import annotations

import json

import pytest
from fhir_pipeline import config
from fhir_pipeline.job_summaries import page_job_summary, read_job_summary

from fhir_contract import job_summary_path
from tests.conftest import AZURITE_ACCOUNT

RUN_ID = "asset_triggered__2026-11-20T06:00:00+00:00"


@pytest.fixture
def lakehouse(tmp_path, monkeypatch):
    """A local lakehouse; pages go to the log channel's file."""
    monkeypatch.setenv("FHIR_LAKEHOUSE_URI", str(tmp_path / "lakehouse"))
    monkeypatch.setenv("FHIR__ALERTS__CHANNELS", "log")
    monkeypatch.setenv("FHIR__ALERTS__LOG_PATH", str(tmp_path / "pages.jsonl"))
    config.settings.cache_clear()
    yield tmp_path
    config.settings.cache_clear()


def paged(root) -> list[dict]:
    pages = root / "pages.jsonl"
    return [json.loads(line) for line in pages.read_text().splitlines()] if pages.exists() else []


def test_each_page_of_a_summary_goes_to_on_call(lakehouse):
    path = job_summary_path(str(lakehouse / "lakehouse"), "train_models", RUN_ID)
    assert ":" not in path.rsplit("/", 1)[1]  # a Hadoop path takes no ':'
    summary = {
        "pages": [
            {
                "subject": "model not retrained: fhir_diabetes_risk",
                "message": "went 3 runs without retraining",
            },
            {"subject": "model not retrained: fhir_readmission_30d", "message": "went 3 runs, too"},
        ]
    }
    (lakehouse / "lakehouse" / "_job_summaries" / "train_models").mkdir(parents=True)
    with open(path, "w") as out:
        json.dump(summary, out)

    assert page_job_summary("train_models", RUN_ID) == [p["subject"] for p in summary["pages"]]
    sent = paged(lakehouse)
    assert [(p["kind"], p["subject"], p["message"]) for p in sent] == [
        ("page", p["subject"], p["message"]) for p in summary["pages"]
    ]


def test_an_empty_or_missing_summary_pages_nobody(lakehouse):
    assert page_job_summary("train_models", RUN_ID) == []
    path = job_summary_path(str(lakehouse / "lakehouse"), "train_models", RUN_ID)
    (lakehouse / "lakehouse" / "_job_summaries" / "train_models").mkdir(parents=True)
    with open(path, "w") as out:
        json.dump({"pages": []}, out)
    assert page_job_summary("train_models", RUN_ID) == []
    assert paged(lakehouse) == []


def test_a_summary_in_azure_storage_is_read_through_the_wasb_connection(azurite, monkeypatch):
    """A lakehouse on abfss:// (the cluster test's): the summary the job wrote as a blob."""
    lakehouse = f"abfss://summaries@{AZURITE_ACCOUNT}.dfs.core.windows.net/lakehouse"
    monkeypatch.setenv(
        "AIRFLOW_CONN_WASB_DEFAULT",
        json.dumps({"conn_type": "wasb", "extra": {"connection_string": azurite.connection_string}}),
    )
    config.settings.cache_clear()
    uri = job_summary_path(lakehouse, "train_models", RUN_ID)
    assert read_job_summary(uri) is None
    blob = uri.split(".net/", 1)[1]
    azurite.container("summaries").upload_blob(blob, json.dumps({"pages": []}))
    assert read_job_summary(uri) == {"pages": []}
