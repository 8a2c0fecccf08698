"""End to end on the Azure landing path under a real Airflow: the landing sensor
deferred in the triggerer until blobs arrive in Azurite, and backfills through the
CLI (each date filled once; a second backfill changes nothing)."""

from __future__ import annotations

import datetime as dt
import json
import time

import pytest
from pyspark.sql import functions as F

from spark_jobs.lakehouse import read_table
from tests.integration.conftest import RUN_DAY, assert_success, at_schedule
from tools.fhir_generator import generate

pytestmark = pytest.mark.e2e

# Two dates show each date filled once in its own slice; a third would only add two runs.
BACKFILL_DAYS = [dt.date(2026, 11, 17), dt.date(2026, 11, 18)]


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
    airflow.stop()  # its idle scheduler and processor would slow the tests after it


def test_azure_landing_sensor_waits_in_the_triggerer_until_blobs_arrive(spark, azure):
    airflow, container, lakehouse, root = azure
    airflow.trigger("fhir_batch_pipeline", "e2e_azure", at_schedule(RUN_DAY))
    deadline = time.monotonic() + 300
    while airflow.task_states("fhir_batch_pipeline", "e2e_azure").get("wait_for_landing") != "deferred":
        assert time.monotonic() < deadline, airflow.task_states("fhir_batch_pipeline", "e2e_azure")
        time.sleep(2)
    # The sensor is deferred (in the triggerer) while the landing zone is empty; now the extract lands.
    uploaded = upload_extract(container, root, RUN_DAY, patients=40, seed=3, history_days=90)
    run = airflow.wait_for_run("fhir_batch_pipeline", "e2e_azure", timeout=1200)
    assert_success(airflow, "fhir_batch_pipeline", run)
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


@pytest.mark.timeout(1800)  # four DAG runs, one at a time
def test_backfill_through_the_cli_fills_each_date_and_a_second_backfill_changes_nothing(spark, azure):
    """Its small lakehouse keeps four runs short."""
    airflow, container, lakehouse, root = azure
    for day in BACKFILL_DAYS:
        upload_extract(container, root, day, patients=40, seed=7, history_days=60)
    # --to-date is a midnight bound: the last day's 06:00 run needs the next day.
    first, until = BACKFILL_DAYS[0].isoformat(), (BACKFILL_DAYS[-1] + dt.timedelta(days=1)).isoformat()

    def backfill(*extra: str) -> list[dict]:
        known = {b["id"] for b in airflow.backfills("fhir_batch_pipeline")}
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
            backfills = airflow.backfills("fhir_batch_pipeline")
            [created] = [b for b in backfills if b["id"] not in known]
            if created["completed_at"]:
                break
            time.sleep(5)
        else:
            raise TimeoutError(f"backfill not finished: {created}")
        runs = [r for r in airflow.runs("fhir_batch_pipeline") if r["run_type"] == "backfill"]
        assert len(runs) == len(BACKFILL_DAYS), runs
        for run in runs:
            assert_success(airflow, "fhir_batch_pipeline", run)
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
