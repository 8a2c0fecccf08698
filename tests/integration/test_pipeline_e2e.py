"""End to end under a real Airflow (scheduler, dag-processor, triggerer, api-server,
LocalExecutor on PostgreSQL) with a local landing folder: runs triggered through the
REST API as the UI does, the gold Asset starting ML training, on-call pages to a local
SMTP server and a local Slack-webhook receiver, OpenLineage events to a local HTTP
receiver (the Azure landing path and backfills: test_azure_e2e.py)."""

from __future__ import annotations

import datetime as dt
import json
import time

import mlflow
import pytest
from pyspark.sql import functions as F

from spark_jobs.lakehouse import read_table
from tests.conftest import HttpReceiver, SmtpReceiver, alert_connections
from tests.integration.conftest import RUN_DAY, assert_success, asset_triggered_run, at_schedule
from tools.fhir_generator import generate

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def receivers():
    http, smtp = HttpReceiver(), SmtpReceiver()
    yield http, smtp
    http.server.shutdown()
    smtp.controller.stop()


@pytest.fixture(scope="module")
def lineage_receiver():
    """Marquez's stand-in: every OpenLineage event, from Airflow's provider and the jobs."""
    receiver = HttpReceiver()
    yield receiver
    receiver.server.shutdown()


ENCOUNTER_CLASSES_VIEW = {
    "resourceType": "ViewDefinition",
    "name": "encounter_classes",
    "status": "active",
    "resource": "Encounter",
    "select": [
        {
            "column": [
                {"name": "encounter_id", "path": "getResourceKey()"},
                {"name": "patient_key", "path": "subject.getReferenceKey(Patient)"},
                {"name": "encounter_class", "path": "class.code"},
                {"name": "started", "path": "period.start"},
            ]
        }
    ],
}


@pytest.fixture(scope="module")
def local(start_airflow, receivers, lineage_receiver, tmp_path_factory):
    """Airflow with a local landing folder, on-call alerts to the receivers, and
    deadlines short enough that a normal run misses one."""
    root = tmp_path_factory.mktemp("e2e-local")
    landing, lakehouse = root / "landing", root / "lakehouse"
    # Enough patients for both models to find labels in every split.
    generate(patients=800, seed=20261120, out=str(landing), date=RUN_DAY.isoformat())
    # A user's view: one JSON file in the configured folder, nothing else.
    views = root / "views"
    views.mkdir()
    (views / "encounter_classes.json").write_text(json.dumps(ENCOUNTER_CLASSES_VIEW))
    http, smtp = receivers
    airflow = start_airflow(
        "local",
        {
            "FHIR_LANDING_URI": str(landing),
            "FHIR_LAKEHOUSE_URI": str(lakehouse),
            "MLFLOW_TRACKING_URI": f"sqlite:///{root}/mlflow/mlflow.db",
            "FHIR__ALERTS__CHANNELS": "slack,email",
            "FHIR__BATCH__DEADLINE_AFTER_QUEUED_MINUTES": "0.5",
            "FHIR__VIEWS__EXTRA_FOLDER": str(views),
            "OPENLINEAGE__TRANSPORT": json.dumps({"type": "http", "url": lineage_receiver.url("")}),
            "OPENLINEAGE_NAMESPACE": "fhir_e2e",
            **alert_connections(http, smtp),
        },
    )
    for dag_id in ("fhir_batch_pipeline", "fhir_ml_training"):
        airflow.wait_for_dag(dag_id)
        airflow.unpause(dag_id)
    yield airflow, landing, lakehouse
    airflow.stop()  # its idle scheduler and processor would slow the tests after it


@pytest.fixture(scope="module")
def happy_run(local):
    airflow, landing, lakehouse = local
    airflow.trigger("fhir_batch_pipeline", "e2e_happy", at_schedule(RUN_DAY), {"lookback_days": 1})
    run = airflow.wait_for_run("fhir_batch_pipeline", "e2e_happy", timeout=1200)
    assert_success(airflow, "fhir_batch_pipeline", run)
    return run


def test_batch_run_through_the_rest_api_fills_every_layer(spark, local, happy_run):
    airflow, landing, lakehouse = local
    states = airflow.task_states("fhir_batch_pipeline", "e2e_happy")
    assert states == {
        "check_landing_or_skip": "success",
        "wait_for_landing": "success",
        "bronze_ingest": "success",
        "silver_normalize": "success",
        "gold_aggregate": "success",
        "quality_gate": "success",
        "publish_gold": "success",
    }
    runs = read_table(spark, str(lakehouse / "bronze" / "ingest_runs")).filter(F.col("run_id") == "e2e_happy")
    [log] = runs.collect()
    expected = sum(
        1
        for path in (landing / "daily_extract" / RUN_DAY.isoformat()).glob("*.ndjson")
        for line in path.read_text().splitlines()
        if line.strip()
    )
    assert log.records_read >= expected > 0  # plus the resources inside transaction Bundles
    features = read_table(spark, str(lakehouse / "gold" / "chronic_disease_features")).filter(
        F.col("as_of_date") == F.lit(RUN_DAY)
    )
    assert features.count() == 800
    # The user's one-file view became a silver table with every Encounter of the extract.
    encounters = read_table(spark, str(lakehouse / "silver" / "encounters_normalized"))
    view = read_table(spark, str(lakehouse / "silver" / "encounter_classes"))
    assert view.count() == encounters.count() > 800
    assert view.join(encounters, view.encounter_id == encounters.encounter_id, "left_anti").isEmpty()
    # Patient keys hashed as silver hashes them, references inside transaction Bundles resolved.
    pairs = view.join(encounters, "encounter_id").select("patient_key", "patient_id_hashed")
    assert pairs.filter(~F.col("patient_key").eqNullSafe(F.col("patient_id_hashed"))).isEmpty()


def test_gold_asset_event_starts_ml_training_which_scores_patients(spark, local, happy_run):
    airflow, _, lakehouse = local
    events = airflow.asset_events("fhir_batch_pipeline", "e2e_happy")
    assert [e["name"] for e in events] == ["fhir_gold"]
    assert events[0]["extra"]["as_of"] == RUN_DAY.isoformat()
    run = airflow.wait_for_run(
        "fhir_ml_training", asset_triggered_run(airflow, "fhir_ml_training"), timeout=1200
    )
    assert_success(airflow, "fhir_ml_training", run)
    states = airflow.task_states("fhir_ml_training", run["dag_run_id"])
    assert states == {
        "train_models": "success",
        "register_in_azure_ml": "skipped",
        "score_risk": "success",
        "page_stale_champions": "success",
        "page_drift": "success",
    }
    scores = read_table(spark, str(lakehouse / "gold" / "risk_scores")).filter(
        F.col("as_of_date") == F.lit(RUN_DAY)
    )
    assert {r.model_name for r in scores.select("model_name").distinct().collect()} == {
        "fhir_diabetes_risk",
        "fhir_readmission_30d",
    }


def test_a_task_failing_for_good_pages_on_call_without_retrying(local, receivers):
    airflow, _, _ = local
    http, smtp = receivers
    airflow.trigger(
        "fhir_batch_pipeline",
        "e2e_missing_landing",
        at_schedule(dt.date(2026, 11, 1)),
        {"skip_sensor": True, "landing_prefix": "no/such/folder"},
    )
    run = airflow.wait_for_run("fhir_batch_pipeline", "e2e_missing_landing", timeout=600)
    assert run["state"] == "failed"
    [bronze] = [
        ti
        for ti in airflow.task_instances("fhir_batch_pipeline", "e2e_missing_landing")
        if ti["task_id"] == "bronze_ingest"
    ]
    assert (bronze["state"], bronze["try_number"]) == ("failed", 1)  # permanent: no retry
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and not any("e2e_missing_landing" in r["body"] for r in http.received):
        time.sleep(1)
    [slack] = [
        json.loads(r["body"])["text"]
        for r in http.received
        if "e2e_missing_landing" in r["body"] and "FAILED" in r["body"]
    ]
    assert "fhir_batch_pipeline.bronze_ingest" in slack and "/tasks/bronze_ingest" in slack
    assert "logical date 2026-11-01" in slack
    assert any("e2e_missing_landing" in m["data"] and "bronze_ingest" in m["data"] for m in smtp.messages)


def test_a_run_missing_its_deadline_pages_on_call(local, receivers, happy_run):
    """The happy run took longer than the (test) 30-second deadline after it was queued."""
    http, smtp = receivers
    deadline = time.monotonic() + 300  # the deadline callback waits its turn on a busy machine
    pages = []
    while not pages and time.monotonic() < deadline:
        pages = [
            json.loads(r["body"])["text"]
            for r in http.received
            if "DEADLINE MISSED" in r["body"] and "e2e_happy" in r["body"]
        ]
        time.sleep(2)
    assert pages, [r["body"] for r in http.received]
    assert "run e2e_happy" in pages[0] and "/dags/fhir_batch_pipeline/runs/e2e_happy" in pages[0]
    assert any("deadline missed: fhir_batch_pipeline (e2e_happy)" in m["data"] for m in smtp.messages)


def lineage_events(receiver) -> list[dict]:
    return [json.loads(r["body"]) for r in receiver.received if r["path"] == "/api/v1/lineage"]


def task_runs(events: list[dict], dag_id: str, run_id: str) -> dict[str, str]:
    """OpenLineage run id of each task of one DAG run, from the provider's events."""
    return {
        e["job"]["name"].removeprefix(f"{dag_id}."): e["run"]["runId"]
        for e in events
        if e["job"]["name"].startswith(f"{dag_id}.") and f'"{run_id}"' in json.dumps(e["run"]["facets"])
    }


def job_runs(events: list[dict], parents: dict[str, str]) -> dict[str, dict]:
    """The COMPLETE event of the Spark job each of these task runs started, by task."""
    by_parent = {run_id: task for task, run_id in parents.items()}
    jobs = {}
    for e in events:
        parent = e["run"]["facets"].get("parent", {}).get("run", {}).get("runId")
        if (
            e["job"]["name"].startswith("fhir_spark_jobs.")
            and e["eventType"] == "COMPLETE"
            and parent in by_parent
        ):
            jobs[by_parent[parent]] = e
    return jobs


def paths(event: dict, side: str) -> set[str]:
    return {d["name"] for d in event[side] if d["namespace"] == "file"}


def test_lineage_joins_the_landing_folder_to_the_models_through_every_table(
    local, lineage_receiver, happy_run
):
    """Each task's Spark job is an OpenLineage child of the task, named by what it read and
    wrote: landing folder -> bronze -> silver -> gold -> model versions -> risk scores."""
    airflow, landing, lakehouse = local
    ml_run = asset_triggered_run(airflow, "fhir_ml_training")
    assert_success(
        airflow, "fhir_ml_training", airflow.wait_for_run("fhir_ml_training", ml_run, timeout=1200)
    )
    events = lineage_events(lineage_receiver)
    batch_tasks = task_runs(events, "fhir_batch_pipeline", "e2e_happy")
    batch = job_runs(events, batch_tasks)
    assert set(batch) == {"bronze_ingest", "silver_normalize", "gold_aggregate", "quality_gate"}, sorted(
        batch
    )
    for task, event in batch.items():
        assert event["job"]["name"] == f"fhir_spark_jobs.{task}"
        parent = event["run"]["facets"]["parent"]
        assert (parent["job"]["namespace"], parent["job"]["name"]) == (
            "fhir_e2e",
            f"fhir_batch_pipeline.{task}",
        )
        assert parent["root"]["job"]["name"] == "fhir_batch_pipeline"

    def tables(layer: str) -> set[str]:
        return {str(p) for p in (lakehouse / layer).iterdir()}

    bronze, silver, gold = (batch[t] for t in ("bronze_ingest", "silver_normalize", "gold_aggregate"))
    assert str(landing / "daily_extract" / RUN_DAY.isoformat()) in paths(bronze, "inputs")
    assert str(lakehouse / "bronze" / "fhir_raw") in paths(bronze, "outputs")
    assert paths(bronze, "outputs") <= tables("bronze")
    assert paths(silver, "outputs") == tables("silver")  # the user's view too
    assert paths(silver, "inputs") & paths(bronze, "outputs")
    ml_tables = {str(lakehouse / "gold" / t) for t in ("risk_scores", "model_monitoring")}
    assert paths(gold, "outputs") == tables("gold") - ml_tables
    assert paths(gold, "inputs") and paths(gold, "inputs") <= tables("silver")
    assert paths(batch["quality_gate"], "outputs") == set()

    ml = job_runs(events, task_runs(events, "fhir_ml_training", ml_run))
    train, score = ml["train_models"], ml["score_risk"]
    assert paths(train, "inputs") & paths(gold, "outputs")
    models = {d["name"]: d["facets"]["mlflowModelVersion"] for d in train["outputs"]}
    client = mlflow.MlflowClient(tracking_uri=airflow.env["MLFLOW_TRACKING_URI"])
    for dataset, facet in models.items():
        version = client.get_model_version(facet["name"], facet["version"])
        assert dataset == f"{facet['name']}/{facet['version']}" and version.run_id == facet["runId"]
    assert {m["name"] for m in models.values()} == {"fhir_diabetes_risk", "fhir_readmission_30d"}
    assert {d["name"] for d in score["inputs"] if d["namespace"] == "mlflow"} == set(models)
    assert paths(score, "outputs") == ml_tables
