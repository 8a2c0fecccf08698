"""The job_server backend's task: a run of spark_jobs/<job>.py in the warm local driver
of spark_jobs/job_server.py (see compute.py). Its log streams into the task's log; its
exit status marks the task as the spark-submit backend's does."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Iterable
from typing import Any

from airflow.sdk import BaseOperator
from airflow.sdk.exceptions import AirflowException

from fhir_contract import SERVER_EXIT_STATUS_PREFIX
from fhir_pipeline.compute import exit_outcome, lineage_parents


def job_request(
    server_url: str, job: str, job_args: list[str], lineage: dict[str, str] | None = None
) -> urllib.request.Request:
    """The POST that runs one job (`lineage`: its OpenLineage parent and root run)."""
    return urllib.request.Request(
        f"{server_url.rstrip('/')}/jobs",
        data=json.dumps({"job": job, "args": job_args, "lineage": lineage or {}}).encode(),
        headers={"Content-Type": "application/json"},
        method="POST",
    )


def exit_status(lines: Iterable[str], log) -> int | None:
    """Log a job's streamed lines; the exit status its last line gives, or None when
    the stream ended without one (the server stopped mid-job)."""
    for line in lines:
        if line.startswith(SERVER_EXIT_STATUS_PREFIX):
            return int(line.removeprefix(SERVER_EXIT_STATUS_PREFIX))
        log.info("%s", line)
    return None


class JobServerOperator(BaseOperator):
    """Runs spark_jobs/<job>.py with `job_args` (templated) in the job server."""

    template_fields = ("job_args",)
    ui_color = "#fdeee0"

    def __init__(self, *, job: str, job_args: list[str], server_url: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.job = job
        self.job_args = job_args
        self.server_url = server_url

    def execute(self, context) -> None:
        request = job_request(
            self.server_url, self.job, [str(a) for a in self.job_args], lineage_parents(context)
        )
        self.log.info("Running spark_jobs.%s in the job server at %s", self.job, self.server_url)
        try:
            # No read timeout: a job may log nothing for minutes; execution_timeout bounds
            # the task, and the server interrupts a job whose client went away.
            with urllib.request.urlopen(request) as response:
                status = exit_status((raw.decode().rstrip("\n") for raw in response), self.log)
        except urllib.error.HTTPError as exc:
            raise AirflowException(
                f"the job server refused spark_jobs.{self.job}: {exc.code} {exc.reason}"
            ) from exc
        except urllib.error.URLError as exc:
            raise AirflowException(
                f"no job server at {self.server_url} ({exc.reason}): start it with `make airflow` "
                "or `python -m spark_jobs.job_server`, or set compute.backend to spark_submit"
            ) from exc
        if status is None:
            raise AirflowException(f"the job server stopped before spark_jobs.{self.job} ended")
        if status:
            failure = AirflowException(f"spark_jobs.{self.job} failed with exit status {status}")
            outcome = exit_outcome(self.job, status)
            raise (outcome or failure) from failure
