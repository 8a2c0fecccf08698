"""The first run of a fresh install, as `make demo PATIENTS=200` drives it, under a real
Airflow: a small hospital's day (too few labelled rows for either model) lands, the
DAGs are unpaused, and every run ends green with nothing paged."""

from __future__ import annotations

import datetime as dt
import json

import pytest
from fhir_pipeline import config
from pyspark.sql import functions as F

from spark_jobs.lakehouse import read_table
from tests.integration.conftest import TRAINING_SKIPPED
from tools import demo

pytestmark = pytest.mark.e2e


@pytest.mark.timeout(2400)
def test_a_fresh_install_runs_green_and_pages_nobody(spark, start_airflow, tmp_path, monkeypatch):
    paths = {
        "FHIR_LANDING_URI": str(tmp_path / "landing"),
        "FHIR_LAKEHOUSE_URI": str(tmp_path / "lakehouse"),
        "MLFLOW_TRACKING_URI": f"sqlite:///{tmp_path}/mlflow/mlflow.db",
        "FHIR__ALERTS__LOG_PATH": str(tmp_path / "pages.jsonl"),
    }
    for name, value in paths.items():
        monkeypatch.setenv(name, value)  # the demo writes the landing data where Airflow reads it
    config.settings.cache_clear()
    airflow = start_airflow("demo", paths)  # default alert channels: nothing configured

    runs, problems = demo.run_demo(airflow, patients=200, seed=42, timeout=1800)

    assert problems == [], problems
    [batch] = runs["fhir_batch_pipeline"]
    assert set(airflow.task_states("fhir_batch_pipeline", batch["dag_run_id"]).values()) == {"success"}
    by_type = {r["run_type"]: r for r in runs["fhir_ml_training"]}
    assert set(by_type) == {"scheduled", "asset_triggered"}
    # Unpausing fires the weekly fallback before any gold exists: skipped, with its reason.
    fallback = by_type["scheduled"]["dag_run_id"]
    assert airflow.task_states("fhir_ml_training", fallback) == TRAINING_SKIPPED
    fallback_log = airflow.task_log("fhir_ml_training", fallback, "train_models")
    assert "JobSkipped: no gold features yet" in fallback_log
    # The gold Asset's run: 200 patients give neither model enough labelled rows. Each
    # model's reason is logged (and in MLflow), training and scoring are skipped, the run is green.
    triggered = by_type["asset_triggered"]["dag_run_id"]
    assert airflow.task_states("fhir_ml_training", triggered) == TRAINING_SKIPPED
    train_log = airflow.task_log("fhir_ml_training", triggered, "train_models")
    for model in ("fhir_diabetes_risk", "fhir_readmission_30d"):
        assert f"{model} not trained: not enough labelled rows" in train_log, model
    score_log = airflow.task_log("fhir_ml_training", triggered, "score_risk")
    assert "JobSkipped: no model has a @champion yet" in score_log
    features = read_table(spark, str(tmp_path / "lakehouse" / "gold" / "chronic_disease_features"))
    as_of = dt.datetime.fromisoformat(batch["logical_date"]).date()
    assert features.filter(F.col("as_of_date") == F.lit(as_of)).count() == 200

    # Nothing paged for a failure, and no callback complained about a channel.
    pages = tmp_path / "pages.jsonl"
    kinds = [json.loads(line)["kind"] for line in pages.read_text().splitlines()] if pages.exists() else []
    assert "task_failed" not in kinds
    logs = "\n".join(
        airflow.task_log(dag_id, run["dag_run_id"], ti["task_id"], ti["try_number"])
        for dag_id, dag_runs in runs.items()
        for run in dag_runs
        for ti in airflow.task_instances(dag_id, run["dag_run_id"])
        if ti["try_number"]  # a task skipped with its upstream never ran: it has no log
    )
    for complaint in ("Failed to send notification", "isn't defined", "alerts: skipped"):
        assert complaint not in logs + airflow.logs_tail(lines=100000), complaint
    airflow.stop()  # its idle scheduler and processor would slow the tests after it
