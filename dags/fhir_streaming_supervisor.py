"""
### FHIR streaming supervisor

Every `streaming.schedule_minutes` (one run at a time), **supervise_stream** checks
the streaming ingestion job (`spark_jobs/stream_ingest.py`, FHIR events into
bronze within seconds):

- not running, or no progress nor heartbeat for `stale_after_minutes`: restart it
  (locally a detached spark-submit found again through its pid file; on Databricks
  the job's active runs and run-now) and page on-call;
- backlog above `max_backlog_records`: page on-call (the job keeps running);
- more than `max_restarts_per_hour` restarts in the last hour: stop restarting and
  page loudly: the stream needs a person.

The job is exactly once (checkpoint + idempotent Delta appends), so a restart
neither loses nor duplicates records. Its health is in `.local/stream/status.json`
(`streaming.state_dir`), its log beside it.
"""

from datetime import timedelta

from airflow.sdk import DAG, task
from fhir_pipeline.config import settings
from fhir_pipeline.tasks import default_task_args

streaming = settings().streaming

with DAG(
    dag_id="fhir_streaming_supervisor",
    doc_md=__doc__,
    schedule=timedelta(minutes=streaming.schedule_minutes),
    start_date=settings().batch.start_date,
    catchup=False,
    max_active_runs=1,
    tags=["fhir", "streaming"],
    default_args={**default_task_args(), "execution_timeout": timedelta(minutes=10)},
):

    @task
    def supervise_stream():
        """Restart the stream if it is down or stuck; page on restarts, lag and giving up."""
        from fhir_pipeline.streaming import supervise

        return supervise()

    supervise_stream()
