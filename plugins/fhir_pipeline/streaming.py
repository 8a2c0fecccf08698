"""Supervision of the streaming ingestion job (spark_jobs/stream_ingest.py).

`supervise()` is what the fhir_streaming_supervisor DAG runs every few minutes:
read the job's health, restart it when it is not running or has stopped making
progress, page on-call when it restarts it, when the backlog is too large, and
(loudly) when it gives up after too many restarts in an hour.

Where the job runs follows compute.backend, like the batch jobs:
- spark_submit: a detached spark-submit (its own process group), found again
  through a pid file; health from the status file its StreamingQueryListener writes.
- databricks: a Databricks job (streaming.databricks_job_id), found through the
  job's active runs and started with run-now.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fhir_contract import job_command_line
from fhir_pipeline.alerts import page
from fhir_pipeline.compute import (
    SPARK_JOBS,
    job_environment,
    package_spark_jobs,
    spark_jars,
    spark_submit_conf,
)
from fhir_pipeline.config import REPO_ROOT, settings, storage
from fhir_pipeline.provider_internals import databricks_api_call, spark_submit_command

HEALTHY, NOT_RUNNING, STALLED, LAGGING = "healthy", "not_running", "stalled", "lagging"
# A process's command line reads empty while it execs; alive() looks again this many times.
CMDLINE_READS = 20


@dataclass(frozen=True)
class StreamPaths:
    state_dir: Path

    @property
    def status_file(self) -> Path:
        return self.state_dir / "status.json"

    @property
    def pid_file(self) -> Path:
        return self.state_dir / "stream_ingest.pid"

    @property
    def log_file(self) -> Path:
        return self.state_dir / "stream_ingest.log"

    @property
    def restarts_file(self) -> Path:
        return self.state_dir / "restarts.json"


def stream_paths() -> StreamPaths:
    configured = settings().streaming.state_dir
    return StreamPaths(Path(configured) if configured else REPO_ROOT / ".local" / "stream")


def checkpoint_location() -> str:
    return f"{storage().lakehouse_uri.rstrip('/')}/_checkpoints/stream_ingest"


def job_arguments(paths: StreamPaths) -> list[str]:
    """The stream's command line, from the streaming settings."""
    streaming = settings().streaming
    files = streaming.source == "files"
    return job_command_line(
        "stream_ingest",
        source=streaming.source,
        lakehouse=storage().lakehouse_uri,
        checkpoint=checkpoint_location(),
        status_file=paths.status_file,
        trigger_seconds=streaming.trigger_seconds,
        max_files_per_trigger=streaming.max_files_per_trigger,
        max_records_per_trigger=streaming.max_records_per_trigger,
        landing=storage().landing_uri if files else None,
        kafka_bootstrap=None if files else streaming.kafka_bootstrap,
        kafka_topic=None if files else streaming.kafka_topic,
        kafka_sasl=not files and streaming.kafka_sasl,
    )


@dataclass(frozen=True)
class Health:
    state: str
    detail: str
    status: dict[str, Any] | None


def assess(status: dict | None, alive: bool, now: dt.datetime) -> Health:
    """What state the stream is in, from its status file and whether its process lives."""
    streaming = settings().streaming
    if not alive:
        return Health(NOT_RUNNING, "the streaming job is not running", status)
    if status is None:
        return Health(HEALTHY, "started; no status yet", status)
    heartbeat = dt.datetime.fromisoformat(status["heartbeat"])
    silent = (now - heartbeat).total_seconds()
    if silent > streaming.stale_after_minutes * 60:
        return Health(STALLED, f"no progress or heartbeat for {silent / 60:.1f} minutes", status)
    backlog = status.get("backlog")
    if backlog is not None and backlog > streaming.max_backlog_records:
        return Health(LAGGING, f"backlog {backlog} records > {streaming.max_backlog_records}", status)
    return Health(HEALTHY, f"batch {status.get('batch_id')} at {status.get('last_batch_time')}", status)


class LocalStream:
    """The job as a detached spark-submit process on this machine."""

    def __init__(self, paths: StreamPaths):
        self.paths = paths

    def pid(self) -> int | None:
        try:
            return int(self.paths.pid_file.read_text().strip())
        except (FileNotFoundError, ValueError):
            return None

    def alive(self) -> bool:
        pid = self.pid()
        if pid is None:
            return False
        for _ in range(CMDLINE_READS):
            try:
                cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
            except FileNotFoundError:
                return False
            if cmdline:
                return b"stream_ingest" in cmdline
            # Empty while the process execs (spark-submit -> spark-class -> java): a CI run
            # saw a stream that had just started as dead. A zombie stays empty: dead.
            time.sleep(0.05)
        return False

    def status(self) -> dict | None:
        try:
            return json.loads(self.paths.status_file.read_text())
        except (FileNotFoundError, json.JSONDecodeError):
            return None

    def command(self) -> list[str]:
        from airflow.providers.apache.spark.hooks.spark_submit import SparkSubmitHook

        compute = settings().compute
        hook = SparkSubmitHook(
            conn_id=compute.spark_conn_id,
            conf=spark_submit_conf(),
            jars=spark_jars(),
            py_files=package_spark_jobs(),
            name="fhir-stream_ingest",
            application_args=job_arguments(self.paths),
        )
        return spark_submit_command(hook, str(SPARK_JOBS / "stream_ingest.py"))

    def start(self) -> int:
        self.paths.state_dir.mkdir(parents=True, exist_ok=True)
        with open(self.paths.log_file, "a") as log:
            process = subprocess.Popen(
                self.command(),
                env={**os.environ, **job_environment()},
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # outlives the Airflow task that started it
            )
        self.paths.pid_file.write_text(str(process.pid))
        return process.pid

    def stop(self, grace_seconds: float = 30) -> None:
        pid = self.pid()
        if pid is None or not self.alive():
            return
        os.killpg(pid, signal.SIGTERM)
        deadline = time.monotonic() + grace_seconds
        while self.alive() and time.monotonic() < deadline:
            time.sleep(1)
        if self.alive():
            os.killpg(pid, signal.SIGKILL)


class DatabricksStream:
    """The job as a Databricks job (its definition holds the same stream_ingest arguments)."""

    def __init__(self):
        from airflow.providers.databricks.hooks.databricks import DatabricksHook

        compute, streaming = settings().compute, settings().streaming
        self.job_id = streaming.databricks_job_id
        self.hook = DatabricksHook(databricks_conn_id=compute.databricks_conn_id, retry_limit=3)

    def active_runs(self) -> list[dict]:
        response = databricks_api_call(
            self.hook, "GET", "2.2/jobs/runs/list", {"job_id": self.job_id, "active_only": "true"}
        )
        return response.get("runs", [])

    def alive(self) -> bool:
        return bool(self.active_runs())

    def status(self) -> dict | None:
        return None  # progress is on the Databricks side; liveness comes from the active runs

    def start(self) -> int:
        return self.hook.run_now({"job_id": self.job_id})

    def stop(self, grace_seconds: float = 30) -> None:
        for run in self.active_runs():
            self.hook.cancel_run(run["run_id"])


def stream_runner():
    return DatabricksStream() if settings().compute.backend == "databricks" else LocalStream(stream_paths())


def _recent_restarts(paths: StreamPaths, now: dt.datetime) -> list[str]:
    try:
        history = json.loads(paths.restarts_file.read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        history = []
    hour_ago = now - dt.timedelta(hours=1)
    return [t for t in history if dt.datetime.fromisoformat(t) > hour_ago]


def supervise(now: dt.datetime | None = None, runner=None) -> dict[str, Any]:
    """One supervision round; returns what it saw and did."""
    now = now or dt.datetime.now(dt.UTC)
    runner = runner or stream_runner()
    paths = stream_paths()
    health = assess(runner.status(), runner.alive(), now)
    if health.state == HEALTHY:
        return {"state": health.state, "action": "none", "detail": health.detail}
    if health.state == LAGGING:
        page("[FHIR stream] lagging", f"[FHIR stream] LAGGING: {health.detail}. The job keeps running.")
        return {"state": health.state, "action": "paged", "detail": health.detail}

    recent = _recent_restarts(paths, now)
    limit = settings().streaming.max_restarts_per_hour
    if len(recent) >= limit:
        page(
            "[FHIR stream] GIVING UP - streaming ingestion is down",
            f"[FHIR stream] GIVING UP: {health.detail}; already restarted {len(recent)} times in the last "
            f"hour (limit {limit}). Not restarting again: the stream needs a person. Log: {paths.log_file}",
        )
        return {"state": health.state, "action": "gave_up", "detail": health.detail}

    runner.stop()
    started = runner.start()
    paths.state_dir.mkdir(parents=True, exist_ok=True)
    paths.restarts_file.write_text(json.dumps([*recent, now.isoformat()]))
    page(
        "[FHIR stream] restarted",
        f"[FHIR stream] RESTARTED the streaming job ({health.detail}); new process/run {started}; "
        f"restart {len(recent) + 1} of at most {limit} per hour. Log: {paths.log_file}",
    )
    return {"state": health.state, "action": "restarted", "detail": health.detail, "started": started}
