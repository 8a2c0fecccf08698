"""On-call's side of a job's summary (fhir_contract.job_summary_path): a Spark job
that has news for on-call writes it next to the lakehouse, and the DAG's next task
pages it through the notifier factory, so no job imports Airflow and no Airflow
process imports the job's libraries (MLflow, pyspark).
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

from fhir_contract import job_summary_path
from fhir_pipeline.alerts import page
from fhir_pipeline.config import settings, storage
from fhir_pipeline.tasks import azure_location

log = logging.getLogger("fhir_pipeline.job_summaries")


def read_job_summary(uri: str) -> dict | None:
    """The summary at uri (a local path, or Azure storage through the landing's wasb
    connection); None when the job wrote none (it failed before writing it, or does not
    write one on that path, e.g. train_models with no gold to train on)."""
    azure = azure_location(uri)
    if azure:
        from airflow.providers.microsoft.azure.hooks.wasb import WasbHook

        container, blob = azure
        hook = WasbHook(wasb_conn_id=settings().landing.wasb_conn_id)
        if not hook.check_for_blob(container, blob):
            return None
        return json.loads(hook.read_file(container, blob))
    path = Path(uri.removeprefix("file://"))
    return json.loads(path.read_text()) if path.exists() else None


def page_job_summary(job: str, run_id: str) -> list[str]:
    """Page each page of the summary `job` wrote in this DAG run; the subjects paged."""
    uri = job_summary_path(storage().lakehouse_uri, job, run_id)
    summary = read_job_summary(uri)
    if summary is None:
        log.info("%s wrote no summary at %s: nothing to page", job, uri)
        return []
    subjects = []
    for item in summary["pages"]:
        page(item["subject"], item["message"])
        subjects.append(item["subject"])
    log.info("%s: %d page(s) from %s", job, len(subjects), uri)
    return subjects
