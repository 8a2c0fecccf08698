"""The Databricks backend's task: a Jobs API run of spark_jobs/<job>.py (see compute.py)."""

from __future__ import annotations

import re
from contextlib import contextmanager
from typing import Any

from airflow.providers.databricks.operators.databricks import DatabricksSubmitRunOperator
from airflow.sdk.exceptions import AirflowException, AirflowSkipException

from fhir_contract import PERMANENT_ERROR_PREFIX, SKIPPED_ERROR_PREFIX
from fhir_pipeline.compute import lineage_env, permanent_failure


class DatabricksJobOperator(DatabricksSubmitRunOperator):
    """A Databricks run of spark_jobs/<job>.py whose error, when the job says so, marks
    the task skipped or failed for good, as the spark-submit backend does."""

    def __init__(self, *, job: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.job = job

    def execute(self, context):
        for task in self.json["tasks"]:  # the task's lineage parent, in the job's environment
            task["new_cluster"].setdefault("spark_env_vars", {}).update(lineage_env(context))
        # A run already over when first polled is judged here, not after a deferral.
        with self._judged():
            return super().execute(context)

    def execute_complete(self, context, event):
        with self._judged():
            return super().execute_complete(context, event)

    @contextmanager
    def _judged(self):
        try:
            yield
        except AirflowException as exc:
            outcome = self._outcome(str(exc))
            if outcome is None:
                raise
            raise outcome from exc

    def _outcome(self, failure: str) -> Exception | None:
        """What a failed run's message (which quotes each task's error) means for the
        task: a skip, a permanent failure, or (None) an ordinary failure."""
        skipped = re.search(re.escape(SKIPPED_ERROR_PREFIX) + r"\s*([^'\"\n]*)", failure)
        if skipped:
            return AirflowSkipException(f"spark_jobs.{self.job} had nothing to do: {skipped.group(1)}")
        if PERMANENT_ERROR_PREFIX in failure:
            return permanent_failure(self.job)
        return None
