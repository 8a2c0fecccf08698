"""Every DAG in dags/ loads, follows the repository policy, and declares what the
runbook says; DAG files import nothing heavy."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import pytest
from airflow.models import DagBag
from fhir_pipeline.alerts import missing_alert_connections, page_deadline_missed, page_on_call
from fhir_pipeline.compute import SparkJobOperator
from fhir_pipeline.config import settings
from fhir_pipeline.dag_policy import dag_breaches
from fhir_pipeline.tasks import RUN_DATE, gold_event_as_of

DAGS = Path(__file__).resolve().parents[2] / "dags"
EXPECTED = {
    "fhir_batch_pipeline",
    "fhir_ml_training",
    "fhir_lakehouse_maintenance",
    "fhir_streaming_supervisor",
}
HEAVY_MODULES = ("pyspark", "mlflow", "pandas", "numpy", "sklearn", "delta", "azure.ai.ml", "matplotlib")


@pytest.fixture(scope="module")
def bag():
    return DagBag(dag_folder=str(DAGS))


def test_all_dags_import_without_errors(bag):
    assert bag.import_errors == {}
    assert set(bag.dag_ids) == EXPECTED


def test_every_dag_follows_the_policy(bag):
    for dag_id in bag.dag_ids:
        assert dag_breaches(bag.dags[dag_id]) == [], dag_id


def test_every_task_pages_on_call_and_has_capped_backoff(bag):
    retries = settings().retries
    for dag in bag.dags.values():
        for task in dag.tasks:
            assert task.on_failure_callback == [page_on_call], (dag.dag_id, task.task_id)
            assert task.retries == retries.retries
            assert task.retry_exponential_backoff == retries.backoff_multiplier
            assert task.max_retry_delay == timedelta(minutes=retries.max_retry_delay_minutes)
            assert task.has_retry_policy


def test_default_alert_channels_need_no_connection(monkeypatch):
    """A fresh clone pages on-call (the log channel) with nothing configured."""
    for name in [name for name in os.environ if name.startswith("FHIR__ALERTS__")]:
        monkeypatch.delenv(name)
    settings.cache_clear()
    try:
        assert settings().alerts.channels == ["log"]
        assert missing_alert_connections() == []
    finally:
        settings.cache_clear()


def test_a_bad_setting_fails_parsing_every_dag_with_its_message(monkeypatch):
    monkeypatch.setenv("FHIR__COMPUTE__BACKEND", "emr")
    settings.cache_clear()
    try:
        errors = DagBag(dag_folder=str(DAGS)).import_errors
    finally:
        settings.cache_clear()
    assert {Path(path).stem for path in errors} == EXPECTED
    for error in errors.values():
        assert "compute.backend: Input should be 'spark_submit', 'job_server' or 'databricks'" in error
        assert "FHIR__COMPUTE__BACKEND" in error


def test_batch_pipeline_runs_the_layers_in_order(bag):
    dag = bag.dags["fhir_batch_pipeline"]
    downstream = {t.task_id: sorted(t.downstream_task_ids) for t in dag.tasks}
    assert downstream == {
        "check_landing_or_skip": ["bronze_ingest", "wait_for_landing"],
        "wait_for_landing": ["bronze_ingest"],
        "bronze_ingest": ["silver_normalize"],
        "silver_normalize": ["gold_aggregate"],
        "gold_aggregate": ["quality_gate"],
        "quality_gate": ["publish_gold"],
        "publish_gold": [],
    }
    # Bronze runs after the sensor, or straight after the branch when the sensor is skipped.
    assert dag.get_task("bronze_ingest").trigger_rule == "none_failed_min_one_success"
    assert [o.name for o in dag.get_task("publish_gold").outlets] == ["fhir_gold"]
    assert list(dag.get_task("publish_gold").op_args) == [RUN_DATE]  # the day the jobs ran for
    bronze = dag.get_task("bronze_ingest")
    assert isinstance(bronze, SparkJobOperator)
    assert Path(bronze.application).name == "bronze_ingest.py" and Path(bronze.application).exists()
    args = bronze.application_args
    assert args[args.index("--run-date") + 1].startswith("{{")
    assert dag.get_task("silver_normalize").application_args[-1] == "{{ params.lookback_days }}"
    assert dag.get_task("wait_for_landing").deferrable


def test_batch_pipeline_trigger_form_is_typed_and_validated(bag):
    params = bag.dags["fhir_batch_pipeline"].params
    schemas = {name: params.get_param(name).schema for name in params}
    assert schemas["lookback_days"]["type"] == "integer" and schemas["lookback_days"]["minimum"] == 1
    assert schemas["skip_sensor"]["type"] == "boolean"
    assert schemas["landing_prefix"]["type"] == ["null", "string"]
    assert all(schema.get("title") for schema in schemas.values())
    assert all(params.get_param(name).description for name in params)
    from airflow.sdk.definitions.param import Param
    from airflow.sdk.exceptions import ParamValidationError

    with pytest.raises(ParamValidationError):
        Param(1, **schemas["lookback_days"]).resolve(0)
    with pytest.raises(ParamValidationError):
        Param(None, **schemas["landing_prefix"]).resolve("../etc")
    assert Param(None, **schemas["landing_prefix"]).resolve("late/2026-11-20/") == "late/2026-11-20/"


def test_deadlines_page_on_call(bag):
    batch = settings().batch
    alerts = bag.dags["fhir_batch_pipeline"].deadline
    assert sorted(a.interval for a in alerts) == sorted(
        [
            timedelta(minutes=batch.deadline_after_queued_minutes),
            timedelta(minutes=batch.deadline_after_logical_date_minutes),
        ]
    )
    assert {a.callback.path for a in alerts} == {f"{page_deadline_missed.__module__}.page_deadline_missed"}
    for dag_id in ("fhir_ml_training", "fhir_lakehouse_maintenance"):
        assert bag.dags[dag_id].deadline


def test_ml_training_runs_on_new_gold_data_and_weekly(bag):
    dag = bag.dags["fhir_ml_training"]
    assert "name='fhir_gold'" in repr(dag.timetable.asset_condition)
    assert dag.timetable.timetable.expression == settings().ml.schedule
    downstream = {t.task_id: sorted(t.downstream_task_ids) for t in dag.tasks}
    assert downstream["train_models"] == ["page_stale_champions", "register_in_azure_ml", "score_risk"]
    assert downstream["score_risk"] == ["page_drift"]
    score_args = dag.get_task("score_risk").application_args
    assert score_args[score_args.index("--drift-threshold") + 1] == str(settings().ml.drift_psi_threshold)
    # Scoring and the retraining page run also when training had nothing to do (skipped).
    assert dag.get_task("score_risk").trigger_rule == "none_failed"
    assert dag.get_task("page_stale_champions").trigger_rule == "none_failed"
    train_args = dag.get_task("train_models").application_args
    assert train_args[train_args.index("--as-of") + 1] == "{{ gold_event_as_of(triggering_asset_events) }}"


def test_training_takes_the_newest_as_of_date_of_the_gold_events_that_triggered_it():
    from types import SimpleNamespace

    def events(*extras):
        return {"fhir_gold": [SimpleNamespace(extra=extra) for extra in extras]}

    assert gold_event_as_of(events({"as_of": "2026-11-19"}, {"as_of": "2026-11-20"}, None)) == "2026-11-20"
    assert gold_event_as_of({}) == "latest"  # the weekly fallback
    assert gold_event_as_of(events({"run_id": "manual"})) == "latest"


@pytest.mark.parametrize("dag_file", sorted(p.name for p in DAGS.glob("*.py")))
def test_dag_file_parses_without_heavy_imports(dag_file):
    """Parsing must not import Spark, MLflow or pandas: the DAG processor and every task
    parse it (its parse time is in `make bench`)."""
    probe = (
        "import json, sys, runpy; import airflow.sdk; "
        f"runpy.run_path({str(DAGS / dag_file)!r}); "
        f"print(json.dumps([m for m in {HEAVY_MODULES!r} if m in sys.modules]))"
    )
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    heavy = json.loads(result.stdout.strip().splitlines()[-1])
    assert heavy == [], f"{dag_file} imports {heavy} at parse time"
