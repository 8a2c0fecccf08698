"""`make demo`: let the local Airflow run the pipeline on its schedule, and say where to look.

Expects `make airflow` to have started `airflow standalone`. Writes a synthetic
extract for the day of the batch schedule's latest tick into the landing folder,
unpauses the DAGs (the scheduler then creates that day's run, as it would in
production when a DAG is switched on), follows that run and the ML training its
gold Asset starts, and prints the UI address and login, the lakehouse and the
MLflow store.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import sys
import time
from pathlib import Path

from croniter import croniter
from fhir_pipeline.config import settings, storage

from tools.airflow_client import AirflowClient
from tools.fhir_generator import generate

DAGS = ("fhir_batch_pipeline", "fhir_ml_training", "fhir_lakehouse_maintenance")


def _progress(dag_id: str):
    started = time.monotonic()

    def show(states: dict[str, str]) -> None:
        summary = ", ".join(f"{task}={state}" for task, state in states.items() if state)
        print(f"  [{time.monotonic() - started:5.0f}s] {dag_id}: {summary or 'queued'}", flush=True)

    return show


def latest_tick(schedule: str, now: dt.datetime) -> dt.datetime:
    """The most recent time the cron fired (the run the scheduler creates on unpause)."""
    return croniter(schedule, now).get_prev(dt.datetime)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="demo", description=__doc__.split("\n")[0])
    parser.add_argument("--patients", type=int, default=800)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--url", default="http://localhost:8080")
    parser.add_argument("--timeout-minutes", type=float, default=45)
    args = parser.parse_args(argv)

    tick = latest_tick(settings()["batch"]["schedule"], dt.datetime.now(dt.UTC))
    landing = Path(storage().landing_uri) / "daily_extract" / tick.date().isoformat()
    if not landing.exists():
        print(f"Writing {args.patients} synthetic patients to {landing}", flush=True)
        generate(
            patients=args.patients,
            seed=args.seed,
            out=str(landing.parent.parent),
            date=tick.date().isoformat(),
        )

    passwords = Path(os.environ["AIRFLOW_HOME"]) / "simple_auth_manager_passwords.json.generated"
    password = json.loads(passwords.read_text())["admin"]
    airflow = AirflowClient(args.url, "admin", password)
    airflow.wait_until_healthy()
    for dag_id in DAGS:
        airflow.wait_for_dag(dag_id)
    for dag_id in ("fhir_batch_pipeline", "fhir_ml_training"):
        airflow.unpause(dag_id)

    run_id = f"scheduled__{tick.isoformat()}"
    print(f"Unpaused; the scheduler runs fhir_batch_pipeline {run_id} for {tick.date()}", flush=True)
    timeout = args.timeout_minutes * 60
    deadline = time.monotonic() + 120
    while run_id not in {r["dag_run_id"] for r in airflow.runs("fhir_batch_pipeline")}:
        if time.monotonic() > deadline:
            print(f"The scheduler did not create {run_id}: see {args.url}/dags/fhir_batch_pipeline")
            return 1
        time.sleep(2)
    run = airflow.wait_for_run("fhir_batch_pipeline", run_id, timeout, _progress("fhir_batch_pipeline"))
    if run["state"] != "success":
        print(
            f"fhir_batch_pipeline ended {run['state']}: see {args.url}/dags/fhir_batch_pipeline/runs/{run_id}"
        )
        return 1

    training = None
    deadline = time.monotonic() + 120
    while training is None and time.monotonic() < deadline:
        runs = [r for r in airflow.runs("fhir_ml_training") if r["run_type"] == "asset_triggered"]
        training = max(runs, key=lambda r: r["queued_at"] or "", default=None)
        time.sleep(3)
    if training is None:
        print("fhir_ml_training was not triggered by the gold Asset")
        return 1
    print(f"The gold Asset triggered fhir_ml_training run {training['dag_run_id']}", flush=True)
    run = airflow.wait_for_run(
        "fhir_ml_training", training["dag_run_id"], timeout, _progress("fhir_ml_training")
    )

    lakehouse = storage().lakehouse_uri
    print(
        f"""
Demo finished (fhir_ml_training: {run["state"]}).
  Airflow UI   {args.url}   login admin / {password}
               runs: {args.url}/dags/fhir_batch_pipeline  {args.url}/dags/fhir_ml_training
  Lakehouse    {lakehouse}/{{bronze,silver,gold}}/<table>   (Delta tables)
  MLflow       {storage().mlflow_tracking_uri}
               browse with: mlflow ui --backend-store-uri {storage().mlflow_tracking_uri}
Stop everything with: make down"""
    )
    return 0 if run["state"] == "success" else 1


if __name__ == "__main__":
    sys.exit(main())
