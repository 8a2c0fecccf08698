"""The one notifier factory: pages on-call through the configured channels (the
task log plus a JSON-lines file, Slack webhook, PagerDuty Events v2, e-mail) for
failed tasks and missed deadlines.

Failure pages are task `on_failure_callback`s (they run after the last retry
and know the task, its try, the exception and the log URL). Deadline pages are
Airflow 3 Deadline Alerts: the scheduler notices the miss and the triggerer
awaits `page_deadline_missed`, which must therefore live in an importable module
(plugins/), not in a DAG file. Notifiers are only imported when a page is sent,
so parsing DAG files stays fast.

The `log` channel (the default) needs nothing; the others need an Airflow
connection. A missing one is reported once by `python -m fhir_pipeline.alerts
check` (run by `make airflow`); a page skips that channel with one warning, and a
page no configured channel can take goes to the log channel, so none is lost.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from datetime import timedelta
from pathlib import Path
from typing import Any

from fhir_pipeline.config import REPO_ROOT, ConfigError, settings

# Named explicitly: the module also runs as __main__ (the check).
log = logging.getLogger("fhir_pipeline.alerts")

LOG = "fhir_pipeline.log_notifier.LogNotifier"
SLACK = "airflow.providers.slack.notifications.slack_webhook.SlackWebhookNotifier"
PAGERDUTY = "airflow.providers.pagerduty.notifications.pagerduty.PagerdutyNotifier"
EMAIL = "airflow.providers.smtp.notifications.smtp.SmtpNotifier"
# The alerts setting naming each channel's Airflow connection (`log` needs none).
CONNECTION_SETTINGS = {"slack": "slack_conn_id", "pagerduty": "pagerduty_conn_id", "email": "smtp_conn_id"}
CHECK_COMMAND = "python -m fhir_pipeline.alerts check"

TASK_FAILED = (
    "[FHIR pipeline] FAILED {{ dag.dag_id }}.{{ ti.task_id }} after {{ ti.try_number }} tries | "
    "run {{ run_id }} | logical date {{ dag_run.logical_date or 'none (manual)' }} | "
    "log {{ ti.log_url }} | error: {{ exception }}"
)
TASK_FAILED_SUBJECT = "[FHIR pipeline] task failed: {{ dag.dag_id }}.{{ ti.task_id }} ({{ run_id }})"
DEADLINE_MISSED = (
    "[FHIR pipeline] DEADLINE MISSED {{ dag_run.dag_id }} | run {{ dag_run.dag_run_id }} | "
    "logical date {{ dag_run.logical_date or 'none (manual)' }} | queued {{ dag_run.queued_at }} | "
    "deadline {{ deadline.deadline_time }} | state {{ dag_run.state }} | "
    "log BASE_URL/dags/{{ dag_run.dag_id }}/runs/{{ dag_run.dag_run_id }}"
)
DEADLINE_SUBJECT = "[FHIR pipeline] deadline missed: {{ dag_run.dag_id }} ({{ dag_run.dag_run_id }})"


def _api_base_url() -> str:
    from airflow.configuration import conf

    return conf.get("api", "base_url", fallback="http://localhost:8080").rstrip("/")


def log_path() -> Path:
    """The log channel's JSON-lines file: alerts.log_path, relative to the repository root."""
    path = Path(settings().alerts.log_path)
    return path if path.is_absolute() else REPO_ROOT / path


def channel_connections() -> dict[str, str]:
    """The connection id of every configured channel that needs one."""
    alerts = settings().alerts
    return {
        channel: getattr(alerts, CONNECTION_SETTINGS[channel])
        for channel in alerts.channels
        if channel in CONNECTION_SETTINGS
    }


def notifier_specs(
    message: str, subject: str, kind: str, channels: list[str] | None = None
) -> list[tuple[str, str, dict[str, Any]]]:
    """(channel, notifier class path, keyword arguments) for every configured channel,
    or for `channels`. `kind` (task_failed, deadline_missed, page) labels the log channel's record."""
    alerts = settings().alerts
    specs = []
    for channel in alerts.channels if channels is None else channels:
        if channel == "log":
            specs.append(
                (
                    channel,
                    LOG,
                    {"kind": kind, "subject": subject, "message": message, "path": str(log_path())},
                )
            )
        elif channel == "slack":
            specs.append((channel, SLACK, {"slack_webhook_conn_id": alerts.slack_conn_id, "text": message}))
        elif channel == "pagerduty":
            specs.append(
                (
                    channel,
                    PAGERDUTY,
                    {
                        "pagerduty_events_conn_id": alerts.pagerduty_conn_id,
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
                    channel,
                    EMAIL,
                    {
                        "smtp_conn_id": alerts.smtp_conn_id,
                        "to": alerts.email_to,
                        "subject": subject,
                        "html_content": message,
                    },
                )
            )
    return specs


def _instantiate(path: str, kwargs: dict[str, Any]):
    from airflow.sdk.module_loading import import_string

    return import_string(path)(**kwargs)


def _connection_defined(conn_id: str) -> bool:
    """Whether a task can use `conn_id`: the Task SDK asks the API server, which sees
    AIRFLOW_CONN_* variables, the secrets backend and the metadata DB."""
    from airflow.sdk import Connection
    from airflow.sdk.exceptions import AirflowNotFoundException

    try:
        Connection.get(conn_id)
    except AirflowNotFoundException:
        return False
    return True


async def _aconnection_defined(conn_id: str) -> bool:
    """`_connection_defined` for the triggerer, which must not block its event loop."""
    from airflow.sdk import Connection
    from airflow.sdk.exceptions import AirflowNotFoundException

    try:
        await Connection.async_get(conn_id)
    except AirflowNotFoundException:
        return False
    return True


def _usable_specs(message: str, subject: str, kind: str, missing: dict[str, str]) -> list:
    """The specs of the configured channels whose connection is defined, or the log
    channel's when none is left. One warning names the channels skipped (the check
    explains them), rather than a provider error in every callback."""
    specs = [spec for spec in notifier_specs(message, subject, kind) if spec[0] not in missing]
    if missing:
        log.warning(
            "alerts: skipped %s: connection not defined (see `%s`)%s",
            ", ".join(f"{channel} ({conn_id})" for channel, conn_id in missing.items()),
            CHECK_COMMAND,
            "" if specs else "; paging the log channel instead",
        )
    return specs or notifier_specs(message, subject, kind, channels=["log"])


def _log_fallback(specs: list, failed: list[str], message: str, subject: str, kind: str) -> list:
    """The log channel's spec when every channel failed to deliver and it was not one of them."""
    if len(failed) < len(specs) or "log" in failed:
        return []
    return notifier_specs(message, subject, kind, channels=["log"])


def _send(message: str, subject: str, kind: str, context) -> None:
    missing = {ch: conn for ch, conn in channel_connections().items() if not _connection_defined(conn)}
    specs = _usable_specs(message, subject, kind, missing)
    failed = []
    for channel, path, kwargs in specs:
        try:
            _instantiate(path, kwargs)(context)
        except Exception as exc:  # one channel failing must not keep the page from the others
            failed.append(channel)
            log.error("alerts: page not delivered to %s: %s", channel, exc)
    for _, path, kwargs in _log_fallback(specs, failed, message, subject, kind):
        _instantiate(path, kwargs)(context)


def page(subject: str, message: str) -> None:
    """Page every channel with a plain message (no run context: e.g. the stream supervisor)."""
    _send(message, subject, "page", {})


def page_on_call(context) -> None:
    """on_failure_callback of every task (runs after the last retry). The notifiers
    are built here, not at DAG parse time, which keeps parsing fast."""
    _send(TASK_FAILED, TASK_FAILED_SUBJECT, "task_failed", context)


async def page_deadline_missed(context=None) -> None:
    """Deadline Alert callback (runs in the triggerer): page every channel.

    `context` holds the run (`dag_run`, a dict with dag_run_id) and the `deadline`.
    """
    message = DEADLINE_MISSED.replace("BASE_URL", _api_base_url())
    kind = "deadline_missed"
    missing = {ch: conn for ch, conn in channel_connections().items() if not await _aconnection_defined(conn)}
    specs = _usable_specs(message, DEADLINE_SUBJECT, kind, missing)
    failed = []
    for channel, path, kwargs in specs:
        notifier = _instantiate(path, kwargs)
        notifier.context = dict(context or {})
        try:
            await notifier
        except Exception as exc:  # one channel failing must not keep the page from the others
            failed.append(channel)
            log.error("alerts: page not delivered to %s: %s", channel, exc)
    for _, path, kwargs in _log_fallback(specs, failed, message, DEADLINE_SUBJECT, kind):
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


def _connection_configured(conn_id: str) -> bool:
    """Whether `conn_id` exists, for the check, which runs as a plain process (before
    Airflow starts). There the Task SDK has no API server to ask and sees only
    AIRFLOW_CONN_* and the secrets backend; airflow.models also reads the metadata DB,
    as `airflow connections get` does (a DB not created yet holds no connection)."""
    if _connection_defined(conn_id):
        return True
    from airflow.exceptions import AirflowNotFoundException
    from airflow.models.connection import Connection

    try:
        Connection.get_connection_from_secrets(conn_id)
    except AirflowNotFoundException:
        return False
    return True


def _writable(path: Path) -> bool:
    """Whether the file can be appended to, or created (with its missing parent folders)."""
    if path.exists():
        return path.is_file() and os.access(path, os.W_OK)
    ancestor = next(parent for parent in path.parents if parent.exists())
    return ancestor.is_dir() and os.access(ancestor, os.W_OK | os.X_OK)


def missing_alert_connections() -> list[str]:
    """One sentence per problem keeping a configured channel from paging: a connection
    that is not defined, or a log file that cannot be written (the log channel is also
    where a page goes when no other channel can take it)."""
    problems = [
        f"alerts.channels has {channel} but connection {conn_id} is not defined "
        f"(set AIRFLOW_CONN_{conn_id.upper()} or add it in the UI)"
        for channel, conn_id in channel_connections().items()
        if not _connection_configured(conn_id)
    ]
    if not _writable(log_path()):
        problems.append(f"alerts.log_path {log_path()} cannot be written (the log channel and fallback)")
    return problems


def check_report() -> list[str]:
    """The lines `python -m fhir_pipeline.alerts check` prints."""
    problems = missing_alert_connections()
    if problems:
        return [
            f"alert channels: {len(problems)} problem(s); pages skip these channels "
            f"and go to the log channel ({log_path()}) when none is left:",
            *(f"  - {problem}" for problem in problems),
        ]
    connections = channel_connections()
    described = [
        f"log -> {log_path()}" if channel == "log" else f"{channel} ({connections[channel]})"
        for channel in settings().alerts.channels
    ]
    fallback = "" if "log" in settings().alerts.channels else f"; fallback log -> {log_path()}"
    return [f"alert channels OK: {', '.join(described)}{fallback}"]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m fhir_pipeline.alerts",
        description="check: report alert channels that cannot page (a warning: exits 0 either way)",
    )
    parser.add_argument("command", choices=["check"])
    parser.parse_args(argv)
    try:
        lines = check_report()
    except ConfigError as exc:  # the settings themselves are unusable: fail fast, as the DAGs would
        print(exc, file=sys.stderr)
        return 1
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
