"""`make demo`: run the pipeline once in the local Airflow and say where to look.

Expects `make airflow` to have started `airflow standalone` and `make generate` to
have written the landing folder for --date. Unpauses the DAGs, triggers
fhir_batch_pipeline for that date through the REST API (as the UI's trigger
button does), follows it and the ML training its gold Asset starts, then prints
the UI address and login, the lakehouse tables and the MLflow store.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import sys
import time
from pathlib import Path

from tools.airflow_client import AirflowClient

DAGS = ("fhir_batch_pipeline", "fhir_ml_training", "fhir_lakehouse_maintenance")


def _progress(dag_id: str):
    started = time.monotonic()

    def show(states: dict[str, str]) -> None:
        summary = ", ".join(f"{task}={state}" for task, state in states.items() if state)
        print(f"  [{time.monotonic() - started:5.0f}s] {dag_id}: {summary or 'queued'}", flush=True)

    return show


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="demo", description=__doc__.split("\n")[0])
    parser.add_argument("--date", required=True, type=dt.date.fromisoformat)
    parser.add_argument("--url", default="http://localhost:8080")
    parser.add_argument("--timeout-minutes", type=float, default=45)
    args = parser.parse_args(argv)

    passwords = Path(os.environ["AIRFLOW_HOME"]) / "simple_auth_manager_passwords.json.generated"
    password = json.loads(passwords.read_text())["admin"]
    airflow = AirflowClient(args.url, "admin", password)
    airflow.wait_until_healthy()
    for dag_id in DAGS:
        airflow.wait_for_dag(dag_id)
    for dag_id in ("fhir_batch_pipeline", "fhir_ml_training"):
        airflow.unpause(dag_id)

    run_id = f"demo__{args.date}__{int(time.time())}"
    logical = dt.datetime.combine(args.date, dt.time(6, 0, tzinfo=dt.UTC))
    print(f"Triggered fhir_batch_pipeline run {run_id} for {args.date}", flush=True)
    airflow.trigger("fhir_batch_pipeline", run_id, logical)
    timeout = args.timeout_minutes * 60
    run = airflow.wait_for_run("fhir_batch_pipeline", run_id, timeout, _progress("fhir_batch_pipeline"))
    if run["state"] != "success":
        print(f"fhir_batch_pipeline ended {run['state']}: see {args.url}/dags/fhir_batch_pipeline/runs/{run_id}")
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
    run = airflow.wait_for_run("fhir_ml_training", training["dag_run_id"], timeout, _progress("fhir_ml_training"))

    lakehouse = os.environ.get("FHIR_LAKEHOUSE_URI", "")
    print(
        f"""
Demo finished (fhir_ml_training: {run['state']}).
  Airflow UI   {args.url}   login admin / {password}
               runs: {args.url}/dags/fhir_batch_pipeline  {args.url}/dags/fhir_ml_training
  Lakehouse    {lakehouse}/{{bronze,silver,gold}}/<table>   (Delta tables)
  MLflow       {os.environ.get("MLFLOW_TRACKING_URI", "")}
               browse with: mlflow ui --backend-store-uri {os.environ.get("MLFLOW_TRACKING_URI", "")}
Stop everything with: make down"""
    )
    return 0 if run["state"] == "success" else 1


if __name__ == "__main__":
    sys.exit(main())
