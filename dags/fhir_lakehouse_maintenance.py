"""
### FHIR lakehouse maintenance

Weekly (`maintenance.schedule`, UTC): **optimize_and_vacuum** compacts every
Delta table (Z-ORDER: bronze `fhir_raw` by resource id within its
resource-type partitions; the silver date tables are liquid-clustered by date
and patient hash, which OPTIMIZE applies), then
VACUUMs files older than `maintenance.vacuum_retention_hours` (7 days), and
logs each table's file count before and after.

**When it fails**: retries with capped exponential backoff, then pages on-call;
unfinished `deadline_after_queued_minutes` after being queued pages too.
Safe to re-run at any time (Delta OPTIMIZE/VACUUM are idempotent).
"""

from datetime import timedelta

from airflow.sdk import DAG, CronTriggerTimetable
from fhir_pipeline.alerts import deadline_alerts
from fhir_pipeline.compute import spark_job
from fhir_pipeline.config import settings, storage
from fhir_pipeline.tasks import default_task_args

batch, maintenance = settings().batch, settings().maintenance
paths = storage()

with DAG(
    dag_id="fhir_lakehouse_maintenance",
    doc_md=__doc__,
    schedule=CronTriggerTimetable(maintenance.schedule, timezone="UTC"),
    start_date=batch.start_date,
    catchup=False,
    max_active_runs=1,
    tags=["fhir", "maintenance", "batch"],
    default_args=default_task_args(),
    deadline=deadline_alerts(
        after_queued=timedelta(minutes=batch.deadline_after_queued_minutes), after_logical_date=None
    ),
):
    spark_job(
        "maintenance",
        task_id="optimize_and_vacuum",
        lakehouse=paths.lakehouse_uri,
        retention_hours=maintenance.vacuum_retention_hours,
    )
