"""
### FHIR batch pipeline

Every day (cron `batch.schedule` in `include/config/pipeline.yaml`, UTC), for run date D:

1. **wait_for_landing** - deferred sensor on `<landing>/daily_extract/D/` (Azure Blob /
   ADLS: `WasbPrefixSensor`; local folder: file sensor). Skipped when the trigger
   form says *skip sensor*.
2. **bronze_ingest** - every record of the extract into `bronze/fhir_raw` or
   `bronze/quarantine`, counts in `bronze/ingest_runs`.
3. **silver_normalize** - de-identified silver tables, re-processing *lookback days*,
   and a `silver/<name>` table per ViewDefinition in `include/views/` (and in
   `views.extra_folder`).
4. **gold_aggregate** - trends and ML features as of D.
5. **quality_gate** - fails with the list of breaches when the thresholds in
   `include/config/quality.yaml` are crossed (no retry).
6. **publish_gold** - emits the `fhir_gold` Asset, which starts `fhir_ml_training`.

**When it fails**: each task retries with exponential backoff (capped), except
for errors a retry cannot fix (bad input or configuration), which fail at once;
a task that fails for good pages on-call (`alerts.channels`: the task log and
`.local/alerts/pages.jsonl` by default; Slack / PagerDuty / e-mail when switched on)
with the run id, logical date, task and log URL. A run still
unfinished `deadline_after_queued_minutes` after it was queued, or
`deadline_after_logical_date_minutes` after its logical date, pages too.

**Re-running and backfilling are safe**: every step replaces its own date's slice.
`airflow backfill create --dag-id fhir_batch_pipeline --from-date 2026-11-01 --to-date 2026-11-03`
processes each day's landing folder into its partitions; running it again changes nothing.
"""

from datetime import timedelta

from airflow.sdk import DAG, CronTriggerTimetable, Param, task
from fhir_pipeline.alerts import deadline_alerts
from fhir_pipeline.compute import spark_job
from fhir_pipeline.config import settings, storage
from fhir_pipeline.tasks import (
    LANDING_PREFIX,
    RUN_DATE,
    default_task_args,
    gold_asset,
    landing_sensor,
)

batch = settings().batch
views_folder = settings().views.extra_folder
paths = storage()
GOLD = gold_asset()

with DAG(
    dag_id="fhir_batch_pipeline",
    doc_md=__doc__,
    schedule=CronTriggerTimetable(batch.schedule, timezone="UTC"),
    start_date=batch.start_date,
    catchup=False,
    max_active_runs=batch.max_active_runs,
    tags=["fhir", "batch", "lakehouse"],
    default_args=default_task_args(),
    deadline=deadline_alerts(
        after_queued=timedelta(minutes=batch.deadline_after_queued_minutes),
        after_logical_date=timedelta(minutes=batch.deadline_after_logical_date_minutes),
    ),
    params={
        "lookback_days": Param(
            batch.default_lookback_days,
            type="integer",
            minimum=1,
            maximum=60,
            title="Lookback days",
            description="Bronze ingestion dates silver re-processes, ending at the run date (1: this run).",
        ),
        "landing_prefix": Param(
            None,
            type=["null", "string"],
            # Path segments of letters, digits and _.=-, no "." or ".." segments.
            pattern=r"^(?!.*(^|/)\.{1,2}(/|$))[A-Za-z0-9_.=-]+(/[A-Za-z0-9_.=-]+)*/?$",
            title="Landing prefix override",
            description="Read the extract from <landing>/<prefix> instead of daily_extract/<run date>/.",
        ),
        "skip_sensor": Param(
            False,
            type="boolean",
            title="Skip landing sensor",
            description="Start at once instead of waiting for the landing folder (it must be there already).",
        ),
    },
):

    @task.branch
    def check_landing_or_skip(params=None):
        """Go straight to bronze when the trigger form says skip sensor."""
        return "bronze_ingest" if params["skip_sensor"] else "wait_for_landing"

    wait_for_landing = landing_sensor("wait_for_landing", LANDING_PREFIX)

    bronze = spark_job(
        "bronze_ingest",
        landing=paths.landing_uri,
        lakehouse=paths.lakehouse_uri,
        run_date=RUN_DATE,
        run_id="{{ run_id }}",
        landing_prefix=LANDING_PREFIX,
        trigger_rule="none_failed_min_one_success",
    )
    silver = spark_job(
        "silver_normalize",
        lakehouse=paths.lakehouse_uri,
        run_date=RUN_DATE,
        lookback_days="{{ params.lookback_days }}",
        views_folder=views_folder or None,
    )
    gold = spark_job("gold_aggregate", lakehouse=paths.lakehouse_uri, as_of=RUN_DATE)
    quality = spark_job("quality_gate", lakehouse=paths.lakehouse_uri, run_date=RUN_DATE)

    @task(outlets=[GOLD])
    def publish_gold(as_of: str, dag_run=None, outlet_events=None):
        """Announce the new gold slice (starts fhir_ml_training)."""
        outlet_events[GOLD].extra = {"as_of": as_of, "run_id": dag_run.run_id}
        return as_of

    check_landing_or_skip() >> [wait_for_landing, bronze]
    wait_for_landing >> bronze >> silver >> gold >> quality >> publish_gold(RUN_DATE)
