"""
### FHIR ML training

Runs when `fhir_batch_pipeline` publishes new gold data (the `fhir_gold` Asset),
on the as-of date that event carries, and weekly as a fallback (`ml.schedule`,
UTC) on the newest gold:

1. **train_models** - diabetes-risk and 30-day-readmission models: candidates
   compared on validation AUC, the winner tracked in MLflow and registered;
   `@champion` moves only when it beats the current champion on the same test rows.
   **Skipped**, paging nobody, when there is no gold yet or no new gold since the
   models were last trained. A model with too few labelled rows is not trained
   (its reason is in the task log and in MLflow) while the other one is.
2. **register_in_azure_ml** - the champions to an Azure ML managed online
   endpoint (`spark_jobs/azure_ml_deploy.py`, on the compute backend like the
   other jobs), when `AZUREML_SUBSCRIPTION_ID/RESOURCE_GROUP/WORKSPACE` are set
   (skipped otherwise).
3. **score_risk** - every champion's scores per patient into `gold/risk_scores`,
   also when training was skipped (skipped itself while no model has a champion),
   and each model's drift from the population it scored when trained (PSI per
   feature and of the score) into `gold/model_monitoring`.
4. **page_stale_champions** - pages on-call with what train_models' summary
   says: once when a model that has a champion went `ml.page_after_retrain_skips`
   training runs in a row without retraining.
5. **page_drift** - pages on-call with what score_risk's summary says: once per
   drift episode, when a model's population first reaches `ml.drift_psi_threshold`.

**When it fails**: retries with capped exponential backoff, then pages on-call;
a run unfinished `deadline_after_queued_minutes` after it was queued pages too.
"""

from datetime import timedelta

from airflow.sdk import DAG, AssetOrTimeSchedule, CronTriggerTimetable, task
from fhir_pipeline.alerts import deadline_alerts
from fhir_pipeline.compute import spark_job
from fhir_pipeline.config import settings, storage
from fhir_pipeline.tasks import default_task_args, gold_asset, gold_event_as_of

from fhir_contract import job_summary_path

batch, ml = settings().batch, settings().ml
paths = storage()
AS_OF = "{{ gold_event_as_of(triggering_asset_events) }}"
# Where train_models and score_risk write what on-call should hear (fhir_contract.job_summary_path).
TRAINING_SUMMARY = "{{ job_summary_path(lakehouse, 'train_models', run_id) }}"
SCORING_SUMMARY = "{{ job_summary_path(lakehouse, 'score_risk', run_id) }}"

with DAG(
    dag_id="fhir_ml_training",
    doc_md=__doc__,
    schedule=AssetOrTimeSchedule(
        timetable=CronTriggerTimetable(ml.schedule, timezone="UTC"), assets=[gold_asset()]
    ),
    start_date=batch.start_date,
    catchup=False,
    max_active_runs=1,
    tags=["fhir", "ml", "batch"],
    default_args=default_task_args(),
    user_defined_macros={
        "gold_event_as_of": gold_event_as_of,
        "job_summary_path": job_summary_path,
        "lakehouse": paths.lakehouse_uri,
    },
    deadline=deadline_alerts(
        after_queued=timedelta(minutes=batch.deadline_after_queued_minutes), after_logical_date=None
    ),
):
    train = spark_job(
        "train_models",
        lakehouse=paths.lakehouse_uri,
        tracking_uri=paths.mlflow_tracking_uri,
        as_of=AS_OF,
        min_rows=ml.min_labelled_rows,
        page_after_retrain_skips=ml.page_after_retrain_skips,
        summary_out=TRAINING_SUMMARY,
    )
    register_in_azure_ml = spark_job(
        "azure_ml_deploy", task_id="register_in_azure_ml", tracking_uri=paths.mlflow_tracking_uri
    )
    score = spark_job(
        "score_risk",
        lakehouse=paths.lakehouse_uri,
        tracking_uri=paths.mlflow_tracking_uri,
        as_of=AS_OF,
        drift_threshold=ml.drift_psi_threshold,
        drift_min_rows=ml.drift_min_rows,
        summary_out=SCORING_SUMMARY,
        trigger_rule="none_failed",
    )

    @task(trigger_rule="none_failed")
    def page_stale_champions(run_id=None):
        """Page what train_models' summary says: a champion that keeps going without retraining."""
        from fhir_pipeline.job_summaries import page_job_summary

        return page_job_summary("train_models", run_id)

    @task
    def page_drift(run_id=None):
        """Page what score_risk's summary says: a population that moved since the model was trained."""
        from fhir_pipeline.job_summaries import page_job_summary

        return page_job_summary("score_risk", run_id)

    train >> [register_in_azure_ml, score, page_stale_champions()]
    score >> page_drift()
