"""End to end under a real Airflow (scheduler, dag-processor, triggerer, api-server,
LocalExecutor on PostgreSQL): runs triggered through the REST API as the UI does,
the gold Asset starting ML training, backfills through the CLI, on-call pages to a
local SMTP server and a local Slack-webhook receiver, and the Azure landing path
on Azurite."""

from __future__ import annotations

import datetime as dt
import json
import time

import pytest
from pyspark.sql import functions as F

from spark_jobs.lakehouse import read_table
from tests.conftest import HttpReceiver, SmtpReceiver, alert_connections
from tools.fhir_generator import generate

pytestmark = pytest.mark.e2e

RUN_DAY = dt.date(2026, 11, 20)
BACKFILL_DAYS = [dt.date(2026, 11, 16), dt.date(2026, 11, 17), dt.date(2026, 11, 18)]
SCHEDULED = dt.time(6, 0, tzinfo=dt.UTC)  # the batch cron's time of day


def at_schedule(day: dt.date) -> dt.datetime:
    return dt.datetime.combine(day, SCHEDULED)


@pytest.fixture(scope="module")
def receivers():
    http, smtp = HttpReceiver(), SmtpReceiver()
    yield http, smtp
    http.server.shutdown()
    smtp.controller.stop()


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
def local(start_airflow, receivers, tmp_path_factory):
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
            **alert_connections(http, smtp),
        },
    )
    for dag_id in ("fhir_batch_pipeline", "fhir_ml_training"):
        airflow.wait_for_dag(dag_id)
        airflow.unpause(dag_id)
    yield airflow, landing, lakehouse
    airflow.stop()  # its idle scheduler and processor would slow the tests after it


def _assert_success(airflow, dag_id: str, run: dict) -> None:
    if run["state"] != "success":
        states = airflow.task_states(dag_id, run["dag_run_id"])
        failed = [t for t, s in states.items() if s not in ("success", "skipped")]
        logs = "\n".join(airflow.task_log(dag_id, run["dag_run_id"], t)[-3000:] for t in failed)
        pytest.fail(
            f"{dag_id} {run['dag_run_id']} ended {run['state']}: {states}\n{logs}\n{airflow.logs_tail()}"
        )


@pytest.fixture(scope="module")
def happy_run(local):
    airflow, landing, lakehouse = local
    airflow.trigger("fhir_batch_pipeline", "e2e_happy", at_schedule(RUN_DAY), {"lookback_days": 1})
    run = airflow.wait_for_run("fhir_batch_pipeline", "e2e_happy", timeout=1200)
    _assert_success(airflow, "fhir_batch_pipeline", run)
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
    events = airflow.api(
        "GET", "/assets/events", params={"source_dag_id": "fhir_batch_pipeline", "source_run_id": "e2e_happy"}
    )["asset_events"]
    assert [e["name"] for e in events] == ["fhir_gold"]
    assert events[0]["extra"]["as_of"] == RUN_DAY.isoformat()
    deadline = time.monotonic() + 120
    triggered = []
    while not triggered and time.monotonic() < deadline:
        runs = airflow.api("GET", "/dags/fhir_ml_training/dagRuns")["dag_runs"]
        triggered = [r for r in runs if r["run_type"] == "asset_triggered"]
        time.sleep(3)
    assert triggered, "the gold Asset did not trigger fhir_ml_training"
    run = airflow.wait_for_run("fhir_ml_training", triggered[0]["dag_run_id"], timeout=1200)
    _assert_success(airflow, "fhir_ml_training", run)
    states = airflow.task_states("fhir_ml_training", run["dag_run_id"])
    assert states == {
        "train_models": "success",
        "register_in_azure_ml": "skipped",
        "score_risk": "success",
        "page_stale_champions": "success",
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
        for ti in airflow.api("GET", "/dags/fhir_batch_pipeline/dagRuns/e2e_missing_landing/taskInstances")[
            "task_instances"
        ]
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
    deadline = time.monotonic() + 120
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


def upload_extract(container, root, day: dt.date, **generator_args) -> int:
    """Generate a day's extract and upload it as blobs; returns the NDJSON records uploaded."""
    generate(out=str(root / "extract"), date=day.isoformat(), **generator_args)
    uploaded = 0
    for path in sorted((root / "extract" / "daily_extract" / day.isoformat()).iterdir()):
        with path.open("rb") as data:
            container.upload_blob(f"daily_extract/{day}/{path.name}", data, overwrite=True)
        if path.suffix == ".ndjson":
            uploaded += sum(1 for line in path.read_text().splitlines() if line.strip())
    return uploaded


@pytest.fixture(scope="module")
def azure(start_airflow, azurite, tmp_path_factory):
    root = tmp_path_factory.mktemp("e2e-azure")
    container = azurite.container("e2e-landing")
    airflow = start_airflow(
        "azure",
        {
            "FHIR_LANDING_URI": "wasb://e2e-landing@devstoreaccount1.blob.core.windows.net",
            "FHIR_LAKEHOUSE_URI": str(root / "lakehouse"),
            "MLFLOW_TRACKING_URI": f"sqlite:///{root}/mlflow.db",
            "AIRFLOW_CONN_WASB_DEFAULT": json.dumps(
                {"conn_type": "wasb", "extra": {"connection_string": azurite.connection_string}}
            ),
            "FHIR__ALERTS__CHANNELS": "slack",
            "AIRFLOW_CONN_SLACK_DEFAULT": json.dumps(
                {"conn_type": "slackwebhook", "password": "http://127.0.0.1:9/unused"}
            ),
            **azurite.spark_environment,
        },
    )
    airflow.wait_for_dag("fhir_batch_pipeline")
    airflow.unpause("fhir_batch_pipeline")
    yield airflow, container, root / "lakehouse", root
    airflow.stop()


def test_azure_landing_sensor_waits_in_the_triggerer_until_blobs_arrive(spark, azure):
    airflow, container, lakehouse, root = azure
    airflow.trigger("fhir_batch_pipeline", "e2e_azure", at_schedule(RUN_DAY))
    deadline = time.monotonic() + 300
    while airflow.task_states("fhir_batch_pipeline", "e2e_azure").get("wait_for_landing") != "deferred":
        assert time.monotonic() < deadline, airflow.task_states("fhir_batch_pipeline", "e2e_azure")
        time.sleep(2)
    # The sensor is deferred (in the triggerer) while the landing zone is empty; now the extract lands.
    generate(patients=40, seed=3, out=str(root / "extract"), date=RUN_DAY.isoformat(), history_days=90)
    uploaded = 0
    for path in sorted((root / "extract" / "daily_extract" / RUN_DAY.isoformat()).iterdir()):
        with path.open("rb") as data:
            container.upload_blob(f"daily_extract/{RUN_DAY}/{path.name}", data, overwrite=True)
        uploaded += (
            sum(1 for line in path.read_text().splitlines() if line.strip())
            if path.suffix == ".ndjson"
            else 0
        )
    run = airflow.wait_for_run("fhir_batch_pipeline", "e2e_azure", timeout=1200)
    _assert_success(airflow, "fhir_batch_pipeline", run)
    [log] = (
        read_table(spark, str(lakehouse / "bronze" / "ingest_runs"))
        .filter(F.col("run_id") == "e2e_azure")
        .collect()
    )
    assert log.records_read >= uploaded > 0 and log.quarantined == 0
    sources = {
        r.source_file
        for r in read_table(spark, str(lakehouse / "bronze" / "fhir_raw"))
        .select("source_file")
        .distinct()
        .collect()
    }
    assert sources and all(s.startswith(f"daily_extract/{RUN_DAY}/") for s in sources)


@pytest.mark.timeout(2700)  # six DAG runs, one at a time
def test_backfill_through_the_cli_fills_each_date_and_a_second_backfill_changes_nothing(spark, azure):
    """On the Azure deployment (its small lakehouse keeps six runs short)."""
    airflow, container, lakehouse, root = azure
    for day in BACKFILL_DAYS:
        upload_extract(container, root, day, patients=40, seed=7, history_days=60)
    # --to-date is a midnight bound: the last day's 06:00 run needs the next day.
    first, until = BACKFILL_DAYS[0].isoformat(), (BACKFILL_DAYS[-1] + dt.timedelta(days=1)).isoformat()

    def backfill(*extra: str) -> list[dict]:
        known = {
            b["id"]
            for b in airflow.api("GET", "/backfills", params={"dag_id": "fhir_batch_pipeline"})["backfills"]
        }
        result = airflow.cli(
            "backfill",
            "create",
            "--dag-id",
            "fhir_batch_pipeline",
            "--from-date",
            first,
            "--to-date",
            until,
            "--max-active-runs",
            "1",
            *extra,
        )
        assert result.returncode == 0, result.stderr[-3000:]
        deadline = time.monotonic() + 1800
        while time.monotonic() < deadline:
            backfills = airflow.api("GET", "/backfills", params={"dag_id": "fhir_batch_pipeline"})[
                "backfills"
            ]
            [created] = [b for b in backfills if b["id"] not in known]
            if created["completed_at"]:
                break
            time.sleep(5)
        else:
            raise TimeoutError(f"backfill not finished: {created}")
        runs = [
            r
            for r in airflow.api("GET", "/dags/fhir_batch_pipeline/dagRuns", params={"limit": 100})[
                "dag_runs"
            ]
            if r["run_type"] == "backfill"
        ]
        assert len(runs) == 3, runs
        for run in runs:
            _assert_success(airflow, "fhir_batch_pipeline", run)
        return runs

    def counts() -> dict:
        raw = read_table(spark, str(lakehouse / "bronze" / "fhir_raw"))
        per_day = {r.ingestion_date: r["count"] for r in raw.groupBy("ingestion_date").count().collect()}
        silver = {
            t: read_table(spark, str(lakehouse / "silver" / t)).count()
            for t in ("observations_normalized", "patients_normalized")
        }
        return {"bronze": per_day, **silver}

    runs = backfill()
    assert sorted(r["logical_date"][:10] for r in runs) == [d.isoformat() for d in BACKFILL_DAYS]
    after_first = counts()
    for day in BACKFILL_DAYS:
        assert after_first["bronze"][day] > 0, day  # each date's extract in its own partition
    backfill("--reprocess-behavior", "completed")
    assert counts() == after_first
