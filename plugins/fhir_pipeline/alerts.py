"""The one notifier factory: pages on-call through the configured channels
(Slack webhook, PagerDuty Events v2, e-mail) for failed tasks and missed deadlines.

Failure pages are task `on_failure_callback`s (they run after the last retry
and know the task, its try, the exception and the log URL). Deadline pages are
Airflow 3 Deadline Alerts: the scheduler notices the miss and the triggerer
awaits `page_deadline_missed`, which must therefore live in an importable module
(plugins/), not in a DAG file. Provider notifiers are only imported when a page
is sent, so parsing DAG files stays fast.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from fhir_pipeline.config import settings

SLACK = "airflow.providers.slack.notifications.slack_webhook.SlackWebhookNotifier"
PAGERDUTY = "airflow.providers.pagerduty.notifications.pagerduty.PagerdutyNotifier"
EMAIL = "airflow.providers.smtp.notifications.smtp.SmtpNotifier"

TASK_FAILED = (
    "[FHIR pipeline] FAILED {{ dag.dag_id }}.{{ ti.task_id }} after {{ ti.try_number }} tries | "
    "run {{ run_id }} | logical date {{ dag_run.logical_date or 'none (manual)' }} | "
    "log {{ ti.log_url }} | error: {{ exception }}"
)
DEADLINE_MISSED = (
    "[FHIR pipeline] DEADLINE MISSED {{ dag_run.dag_id }} | run {{ dag_run.dag_run_id }} | "
    "logical date {{ dag_run.logical_date or 'none (manual)' }} | queued {{ dag_run.queued_at }} | "
    "deadline {{ deadline.deadline_time }} | state {{ dag_run.state }} | "
    "log BASE_URL/dags/{{ dag_run.dag_id }}/runs/{{ dag_run.dag_run_id }}"
)


def _api_base_url() -> str:
    from airflow.configuration import conf

    return conf.get("api", "base_url", fallback="http://localhost:8080").rstrip("/")


def notifier_specs(message: str, subject: str) -> list[tuple[str, dict[str, Any]]]:
    """(notifier class path, keyword arguments) for every configured channel."""
    alerts = settings()["alerts"]
    specs = []
    for channel in alerts["channels"]:
        if channel == "slack":
            specs.append((SLACK, {"slack_webhook_conn_id": alerts["slack_conn_id"], "text": message}))
        elif channel == "pagerduty":
            specs.append(
                (
                    PAGERDUTY,
                    {
                        "pagerduty_events_conn_id": alerts["pagerduty_conn_id"],
                        "summary": message[:1024],  # Events v2 summary limit
                        "severity": "critical",
                        "source": "airflow-fhir-lakehouse",
                        "component": "fhir_batch_pipeline",
                        "group": "data-platform",
                        "class_type": subject,
                    },
                )
            )
        elif channel == "email":
            specs.append(
                (
                    EMAIL,
                    {
                        "smtp_conn_id": alerts["smtp_conn_id"],
                        "to": alerts["email_to"],
                        "subject": subject,
                        "html_content": message,
                    },
                )
            )
    return specs


def _instantiate(path: str, kwargs: dict[str, Any]):
    from airflow.sdk.module_loading import import_string

    return import_string(path)(**kwargs)


def task_failure_notifiers() -> list:
    """One notifier per configured channel, for a task that failed for good."""
    subject = "[FHIR pipeline] task failed: {{ dag.dag_id }}.{{ ti.task_id }} ({{ run_id }})"
    return [_instantiate(path, kwargs) for path, kwargs in notifier_specs(TASK_FAILED, subject)]


def page(subject: str, message: str) -> None:
    """Page every channel with a plain message (no run context: e.g. the stream supervisor)."""
    for path, kwargs in notifier_specs(message, subject):
        _instantiate(path, kwargs)({})


def page_on_call(context) -> None:
    """on_failure_callback of every task (runs after the last retry). The provider
    notifiers are built here, not at DAG parse time, which keeps parsing fast."""
    for notifier in task_failure_notifiers():
        notifier(context)


DEADLINE_SUBJECT = "[FHIR pipeline] deadline missed: {{ dag_run.dag_id }} ({{ dag_run.dag_run_id }})"


async def page_deadline_missed(context=None) -> None:
    """Deadline Alert callback (runs in the triggerer): page every channel.

    `context` holds the run (`dag_run`, a dict with dag_run_id) and the `deadline`.
    """
    message = DEADLINE_MISSED.replace("BASE_URL", _api_base_url())
    for path, kwargs in notifier_specs(message, DEADLINE_SUBJECT):
        notifier = _instantiate(path, kwargs)
        notifier.context = dict(context or {})
        await notifier


def deadline_alerts(after_queued: timedelta | None, after_logical_date: timedelta | None) -> list:
    """Deadline alerts paging on-call: a run unfinished `after_queued` after it was
    queued, and (for scheduled runs) `after_logical_date` after its logical date."""
    from airflow.sdk import AsyncCallback, DeadlineAlert, DeadlineReference

    references = [
        ("unfinished-after-queued", DeadlineReference.DAGRUN_QUEUED_AT, after_queued),
        ("unfinished-after-logical-date", DeadlineReference.DAGRUN_LOGICAL_DATE, after_logical_date),
    ]
    return [
        DeadlineAlert(
            reference=reference,
            interval=interval,
            callback=AsyncCallback(page_deadline_missed),
            name=name,
        )
        for name, reference, interval in references
        if interval is not None
    ]
