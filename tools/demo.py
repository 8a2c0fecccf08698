"""`make demo`: let the local Airflow run the pipeline on its schedule, and say where to look.

Expects `make airflow` to have started `airflow standalone`. Writes a synthetic
extract for the day of the batch schedule's latest tick into the landing folder,
unpauses the DAGs (the scheduler then creates that day's run, as it would in
production when a DAG is switched on, and the training DAG's weekly fallback run,
which is skipped while there is no gold yet), follows that run and the ML training
its gold Asset starts, checks that every run the demo started ended green (each
task success or skipped), and prints the UI address and login, the lakehouse and
the MLflow store.
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
UNPAUSED = ("fhir_batch_pipeline", "fhir_ml_training")
GREEN = ("success", "skipped")
GREEN_VERDICT = "Every run succeeded (a skipped task had nothing to do: its log says why)."


def _progress(dag_id: str):
    started = time.monotonic()

    def show(states: dict[str, str]) -> None:
        summary = ", ".join(f"{task}={state}" for task, state in states.items() if state)
        print(f"  [{time.monotonic() - started:5.0f}s] {dag_id}: {summary or 'queued'}", flush=True)

    return show


def latest_tick(schedule: str, now: dt.datetime) -> dt.datetime:
    """The most recent time the cron fired (the run the scheduler creates on unpause)."""
    return croniter(schedule, now).get_prev(dt.datetime)


def _wait_for(what: str, find, timeout: float):
    deadline = time.monotonic() + timeout
    while (found := find()) is None:
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what} after {timeout:.0f}s")
        time.sleep(2)
    return found


def runs_since(airflow: AirflowClient, dag_id: str, since: dt.datetime) -> list[dict]:
    """The DAG's runs queued at or after `since` (the ones the demo started)."""
    return [
        r
        for r in airflow.runs(dag_id)
        if r["queued_at"] and dt.datetime.fromisoformat(r["queued_at"]) >= since
    ]


def settle(airflow: AirflowClient, since: dt.datetime, timeout: float) -> dict[str, list[dict]]:
    """Every run of the unpaused DAGs queued since `since`, once none is still going."""

    def finished():
        runs = {dag_id: runs_since(airflow, dag_id, since) for dag_id in UNPAUSED}
        going = [r for dag_runs in runs.values() for r in dag_runs if r["state"] not in ("success", "failed")]
        return None if going else runs

    return _wait_for("runs still going", finished, timeout)


def problems_in(airflow: AirflowClient, runs: dict[str, list[dict]]) -> list[str]:
    """Each run that did not succeed and each task instance that is neither success nor skipped."""
    problems = []
    for dag_id, dag_runs in runs.items():
        for run in dag_runs:
            if run["state"] != "success":
                problems.append(f"{dag_id} {run['dag_run_id']} ended {run['state']}")
            for task, state in airflow.task_states(dag_id, run["dag_run_id"]).items():
                if state not in GREEN:
                    problems.append(f"{dag_id} {run['dag_run_id']} {task} is {state}")
    return problems


def run_demo(airflow: AirflowClient, *, patients: int, seed: int, timeout: float) -> tuple[dict, list[str]]:
    """Land a day of data, unpause, follow the runs; (runs by DAG, problems)."""
    tick = latest_tick(settings().batch.schedule, dt.datetime.now(dt.UTC))
    landing = Path(storage().landing_uri) / "daily_extract" / tick.date().isoformat()
    if not landing.exists():
        print(f"Writing {patients} synthetic patients to {landing}", flush=True)
        generate(patients=patients, seed=seed, out=str(landing.parent.parent), date=tick.date().isoformat())

    airflow.wait_until_healthy()
    for dag_id in DAGS:
        airflow.wait_for_dag(dag_id)
    since = dt.datetime.now(dt.UTC)
    for dag_id in UNPAUSED:
        airflow.unpause(dag_id)

    run_id = f"scheduled__{tick.isoformat()}"
    print(f"Unpaused; the scheduler runs fhir_batch_pipeline {run_id} for {tick.date()}", flush=True)
    _wait_for(
        f"the scheduler did not create {run_id}",
        lambda: run_id in {r["dag_run_id"] for r in airflow.runs("fhir_batch_pipeline")} or None,
        120,
    )
    batch = airflow.wait_for_run("fhir_batch_pipeline", run_id, timeout, _progress("fhir_batch_pipeline"))
    if batch["state"] == "success":
        training = _wait_for(
            "fhir_ml_training was not triggered by the gold Asset",
            lambda: next(
                (
                    r
                    for r in runs_since(airflow, "fhir_ml_training", since)
                    if r["run_type"] == "asset_triggered"
                ),
                None,
            ),
            120,
        )
        print(f"The gold Asset triggered fhir_ml_training run {training['dag_run_id']}", flush=True)
        airflow.wait_for_run(
            "fhir_ml_training", training["dag_run_id"], timeout, _progress("fhir_ml_training")
        )
    runs = settle(airflow, since, timeout)
    return runs, problems_in(airflow, runs)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="demo", description=__doc__.split("\n")[0])
    parser.add_argument("--patients", type=int, default=800)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--url", default="http://localhost:8080")
    parser.add_argument("--timeout-minutes", type=float, default=45)
    args = parser.parse_args(argv)

    passwords = Path(os.environ["AIRFLOW_HOME"]) / "simple_auth_manager_passwords.json.generated"
    password = json.loads(passwords.read_text())["admin"]
    airflow = AirflowClient(args.url, "admin", password)
    runs, problems = run_demo(
        airflow, patients=args.patients, seed=args.seed, timeout=args.timeout_minutes * 60
    )

    print("\nRuns:")
    for dag_id, dag_runs in runs.items():
        for run in sorted(dag_runs, key=lambda r: r["queued_at"] or ""):
            states = airflow.task_states(dag_id, run["dag_run_id"])
            tasks = ", ".join(f"{task}={state}" for task, state in states.items())
            print(f"  {dag_id} {run['dag_run_id']} ({run['run_type']}): {run['state']} [{tasks}]")
    lakehouse = storage().lakehouse_uri
    verdict = ["NOT GREEN:", *(f"  - {p}" for p in problems)] if problems else [GREEN_VERDICT]
    print(
        f"""
{chr(10).join(verdict)}
  Airflow UI   {args.url}   login admin / {password}
               runs: {args.url}/dags/fhir_batch_pipeline  {args.url}/dags/fhir_ml_training
  Lakehouse    {lakehouse}/{{bronze,silver,gold}}/<table>   (Delta tables)
  MLflow       {storage().mlflow_tracking_uri}
               browse with: mlflow ui --backend-store-uri {storage().mlflow_tracking_uri}
Stop everything with: make down"""
    )
    return 0 if not problems else 1


if __name__ == "__main__":
    sys.exit(main())
