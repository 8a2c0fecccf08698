"""
### FHIR ML training

Runs when `fhir_batch_pipeline` publishes new gold data (the `fhir_gold` Asset),
and weekly as a fallback (`ml.schedule`, UTC):

1. **train_models** - diabetes-risk and 30-day-readmission models on the newest
   gold as-of date: candidates compared on validation AUC, the winner tracked in
   MLflow and registered; `@champion` moves only when it beats the current
   champion on the same test rows.
2. **register_in_azure_ml** - the champions to an Azure ML managed online
   endpoint, when `AZUREML_SUBSCRIPTION_ID/RESOURCE_GROUP/WORKSPACE` are set
   (skipped otherwise).
3. **score_risk** - the champions' scores per patient into `gold/risk_scores`.

**When it fails**: retries with capped exponential backoff, then pages on-call;
a run unfinished `deadline_after_queued_minutes` after it was queued pages too.
Training on too little labelled data fails at once with the counts it saw.
"""

from datetime import UTC, datetime, timedelta

from airflow.sdk import DAG, AssetOrTimeSchedule, CronTriggerTimetable, task
from fhir_pipeline.alerts import deadline_alerts
from fhir_pipeline.compute import spark_job
from fhir_pipeline.config import settings, storage
from fhir_pipeline.tasks import default_task_args, gold_asset, timeout

batch, ml = settings()["batch"], settings()["ml"]
paths = storage()

with DAG(
    dag_id="fhir_ml_training",
    doc_md=__doc__,
    schedule=AssetOrTimeSchedule(
        timetable=CronTriggerTimetable(ml["schedule"], timezone="UTC"), assets=[gold_asset()]
    ),
    start_date=datetime.fromisoformat(batch["start_date"]).replace(tzinfo=UTC),
    catchup=False,
    max_active_runs=1,
    tags=["fhir", "ml", "batch"],
    default_args=default_task_args(),
    deadline=deadline_alerts(
        after_queued=timedelta(minutes=batch["deadline_after_queued_minutes"]), after_logical_date=None
    ),
):
    train = spark_job(
        "train_models",
        "train_models",
        [
            "--lakehouse",
            paths.lakehouse_uri,
            "--tracking-uri",
            paths.mlflow_tracking_uri,
            "--as-of",
            "latest",
        ],
        execution_timeout=timeout("train_models"),
    )

    @task(execution_timeout=timeout("azure_ml_deploy"))
    def register_in_azure_ml():
        """Register the champions in Azure ML and route the endpoints to them (when configured)."""
        from airflow.sdk.exceptions import AirflowSkipException

        from spark_jobs import azure_ml_deploy

        args = azure_ml_deploy.parse_args(["--tracking-uri", paths.mlflow_tracking_uri])
        if azure_ml_deploy.target_from(args) is None:
            raise AirflowSkipException("Azure ML is not configured (AZUREML_* variables unset)")
        return azure_ml_deploy.main(["--tracking-uri", paths.mlflow_tracking_uri])

    score = spark_job(
        "score_risk",
        "score_risk",
        [
            "--lakehouse",
            paths.lakehouse_uri,
            "--tracking-uri",
            paths.mlflow_tracking_uri,
            "--as-of",
            "latest",
        ],
        execution_timeout=timeout("score_risk"),
    )

    train >> [register_in_azure_ml(), score]
