"""On-call pages: the default log channel (task log + JSON-lines file), real
Slack-webhook and SMTP deliveries to local receivers, the exact PagerDuty Events v2
request (PagerDuty cannot be reached from here), and the check that reports a channel
switched on without its connection."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import logging
import os
from types import SimpleNamespace

import pytest
from airflow.sdk import DAG
from fhir_pipeline import alerts, config

from tests.conftest import alert_connections, free_port

# A connection id no environment defines, for "switched on but not configured".
UNDEFINED_SLACK = "slack_alerts_test_undefined"


@pytest.fixture
def pages_file(monkeypatch, tmp_path):
    """The default configuration, with the log channel's file in tmp_path."""
    for name in [name for name in os.environ if name.startswith("FHIR__ALERTS__")]:
        monkeypatch.delenv(name)
    path = tmp_path / "alerts" / "pages.jsonl"
    monkeypatch.setenv("FHIR__ALERTS__LOG_PATH", str(path))
    config.settings.cache_clear()
    yield path
    config.settings.cache_clear()


@pytest.fixture
def channels(monkeypatch, pages_file, http_receiver, smtp_receiver):
    def use(*names):
        for key, value in alert_connections(http_receiver, smtp_receiver).items():
            monkeypatch.setenv(key, value)
        monkeypatch.setenv("FHIR__ALERTS__CHANNELS", ",".join(names))
        config.settings.cache_clear()
        return http_receiver, smtp_receiver

    return use


def read_pages(path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def failure_context():
    dag = DAG("fhir_batch_pipeline", schedule=None)
    ti = SimpleNamespace(
        task_id="silver_normalize",
        try_number=4,
        log_url="http://localhost:8080/dags/fhir_batch_pipeline/runs/scheduled__2026-11-20/tasks/silver_normalize",
    )
    return {
        "dag": dag,
        "ti": ti,
        "task_instance": ti,
        "run_id": "scheduled__2026-11-20T06:00:00+00:00",
        "dag_run": SimpleNamespace(logical_date="2026-11-20T06:00:00+00:00", run_id="scheduled__2026-11-20"),
        "exception": RuntimeError("boom"),
    }


def test_failed_task_pages_slack_and_email_with_run_task_and_log(channels):
    http, smtp = channels("slack", "email")
    alerts.page_on_call(failure_context())

    [slack] = http.received
    assert slack["path"] == "/services/T000/B000/XXXX"
    text = json.loads(slack["body"])["text"]
    for fragment in (
        "fhir_batch_pipeline.silver_normalize",
        "after 4 tries",
        "scheduled__2026-11-20T06:00:00+00:00",
        "logical date 2026-11-20T06:00:00+00:00",
        "/tasks/silver_normalize",
        "error: boom",
    ):
        assert fragment in text, fragment
    [mail] = smtp.messages
    assert mail["to"] == ["oncall@example.com"]
    assert "task failed: fhir_batch_pipeline.silver_normalize" in mail["data"]
    assert "scheduled__2026-11-20T06:00:00+00:00" in mail["data"]


def deadline_context():
    """What the triggerer passes a Deadline Alert callback: plain dicts."""
    return {
        "dag_run": {
            "dag_id": "fhir_batch_pipeline",
            "dag_run_id": "manual__2026-11-23T05:00:00",
            "logical_date": "2026-11-23T05:00:00+00:00",
            "queued_at": "2026-11-23T05:00:01+00:00",
            "state": "running",
        },
        "deadline": {"id": "d-1", "deadline_time": "2026-11-23 07:00:01+00:00"},
    }


def test_missed_deadline_pages_every_channel_from_the_triggerer_context(channels):
    http, smtp = channels("slack", "email")
    asyncio.run(alerts.page_deadline_missed(context=deadline_context()))

    [slack] = http.received
    text = json.loads(slack["body"])["text"]
    assert "DEADLINE MISSED fhir_batch_pipeline" in text
    assert "run manual__2026-11-23T05:00:00" in text and "deadline 2026-11-23 07:00:01+00:00" in text
    assert "/dags/fhir_batch_pipeline/runs/manual__2026-11-23T05:00:00" in text
    [mail] = smtp.messages
    assert "deadline missed: fhir_batch_pipeline (manual__2026-11-23T05:00:00)" in mail["data"]


def test_pagerduty_events_v2_request(channels, monkeypatch):
    """The exact Events v2 fields sent (the client posts them to events.pagerduty.com/v2/enqueue)."""
    import pagerduty

    sent = []

    class Accepted:
        status_code = 202
        is_success = ok = True
        headers: dict = {}
        text = '{"status": "success", "dedup_key": "dedup-1"}'

        def json(self):
            return json.loads(self.text)

    def post(self, path, json=None, **kwargs):  # the HTTP call the client would make
        sent.append({"path": path, "body": json, "client": self})
        return Accepted()

    monkeypatch.setattr(pagerduty.EventsApiV2Client, "post", post)
    monkeypatch.setenv(
        "AIRFLOW_CONN_PAGERDUTY_EVENTS_DEFAULT",
        json.dumps({"conn_type": "pagerduty_events", "password": "routing-key-123"}),
    )
    channels("pagerduty")
    alerts.page_on_call(failure_context())

    [request] = sent
    assert request["path"] == "/v2/enqueue"
    assert "routing-key-123" in json.dumps(vars(request["client"].auth_method), default=str)
    event = request["body"]
    assert event["event_action"] == "trigger"
    assert event["payload"]["severity"] == "critical"
    assert event["payload"]["source"] == "airflow-fhir-lakehouse"
    assert event["payload"]["component"] == "fhir_batch_pipeline"
    assert "FAILED fhir_batch_pipeline.silver_normalize" in event["payload"]["summary"]
    assert len(event["payload"]["summary"]) <= 1024


def test_unknown_channel_is_a_configuration_error(monkeypatch):
    monkeypatch.setenv("FHIR__ALERTS__CHANNELS", "slack,carrier-pigeon")
    config.settings.cache_clear()
    try:
        with pytest.raises(config.ConfigError, match="carrier-pigeon"):
            config.settings()
    finally:
        config.settings.cache_clear()


def test_log_path_must_be_set(monkeypatch):
    monkeypatch.setenv("FHIR__ALERTS__LOG_PATH", '""')
    config.settings.cache_clear()
    try:
        with pytest.raises(config.ConfigError, match="alerts.log_path"):
            config.settings()
    finally:
        config.settings.cache_clear()


def assert_paged_to_log(record, caplog, kind, subject, fragment):
    assert dt.datetime.fromisoformat(record["at"]).utcoffset() == dt.timedelta(0)
    assert (record["kind"], record["subject"]) == (kind, subject)
    assert fragment in record["message"]
    [line] = [
        r for r in caplog.records if r.name == "fhir_pipeline.alerts" and record["message"] in r.message
    ]
    assert line.levelno == logging.WARNING
    assert f"ON-CALL PAGE ({kind})" in line.message


def test_default_config_pages_a_failed_task_to_the_log_channel(pages_file, caplog):
    assert config.settings().alerts.channels == ["log"]
    caplog.set_level(logging.WARNING)
    alerts.page_on_call(failure_context())

    [record] = read_pages(pages_file)
    assert_paged_to_log(
        record,
        caplog,
        "task_failed",
        "[FHIR pipeline] task failed: fhir_batch_pipeline.silver_normalize "
        "(scheduled__2026-11-20T06:00:00+00:00)",
        "FAILED fhir_batch_pipeline.silver_normalize after 4 tries",
    )
    assert "error: boom" in record["message"] and "/tasks/silver_normalize" in record["message"]
    assert (record["dag_id"], record["run_id"], record["task_id"]) == (
        "fhir_batch_pipeline",
        "scheduled__2026-11-20T06:00:00+00:00",
        "silver_normalize",
    )


def test_default_config_pages_a_missed_deadline_to_the_log_channel(pages_file, caplog):
    caplog.set_level(logging.WARNING)
    asyncio.run(alerts.page_deadline_missed(context=deadline_context()))

    [record] = read_pages(pages_file)
    assert_paged_to_log(
        record,
        caplog,
        "deadline_missed",
        "[FHIR pipeline] deadline missed: fhir_batch_pipeline (manual__2026-11-23T05:00:00)",
        "DEADLINE MISSED fhir_batch_pipeline | run manual__2026-11-23T05:00:00",
    )
    assert "deadline 2026-11-23 07:00:01+00:00" in record["message"]
    assert (record["dag_id"], record["run_id"]) == ("fhir_batch_pipeline", "manual__2026-11-23T05:00:00")
    assert "task_id" not in record


def test_default_config_pages_a_plain_message_to_the_log_channel(pages_file, caplog):
    caplog.set_level(logging.WARNING)
    alerts.page("[FHIR stream] lagging", "[FHIR stream] LAGGING: backlog 250000 records.")
    alerts.page("[FHIR stream] restarted", "[FHIR stream] RESTARTED the streaming job.")

    first, second = read_pages(pages_file)  # appended, one JSON object per line
    assert second["subject"] == "[FHIR stream] restarted"
    assert set(first) == {"at", "kind", "subject", "message"}
    assert_paged_to_log(
        first, caplog, "page", "[FHIR stream] lagging", "[FHIR stream] LAGGING: backlog 250000 records."
    )


def test_log_channel_combines_with_slack(channels):
    http, _ = channels("log", "slack")
    alerts.page_on_call(failure_context())
    [slack] = http.received
    [record] = read_pages(alerts.log_path())
    assert json.loads(slack["body"])["text"] == record["message"]


def test_default_config_needs_no_connection(pages_file, capsys):
    assert alerts.missing_alert_connections() == []
    assert alerts.main(["check"]) == 0
    assert capsys.readouterr().out == f"alert channels OK: log -> {pages_file}\n"


@pytest.fixture
def slack_without_connection(monkeypatch, pages_file):
    monkeypatch.delenv(f"AIRFLOW_CONN_{UNDEFINED_SLACK.upper()}", raising=False)
    monkeypatch.setenv("FHIR__ALERTS__CHANNELS", "slack")
    monkeypatch.setenv("FHIR__ALERTS__SLACK_CONN_ID", UNDEFINED_SLACK)
    config.settings.cache_clear()
    return pages_file


def test_check_reports_a_channel_switched_on_without_its_connection(slack_without_connection, capsys):
    [problem] = alerts.missing_alert_connections()
    assert problem == (
        f"alerts.channels has slack but connection {UNDEFINED_SLACK} is not defined "
        f"(set AIRFLOW_CONN_{UNDEFINED_SLACK.upper()} or add it in the UI)"
    )
    assert alerts.main(["check"]) == 0  # a warning, not a crash
    out = capsys.readouterr().out
    assert "1 problem" in out and problem in out


SENDERS = {
    "task_failed": lambda: alerts.page_on_call(failure_context()),
    "deadline_missed": lambda: asyncio.run(alerts.page_deadline_missed(context=deadline_context())),
}


@pytest.mark.parametrize("kind", sorted(SENDERS))
def test_a_missing_connection_warns_once_and_the_page_still_goes_to_the_log_channel(
    slack_without_connection, caplog, capfd, kind
):
    caplog.set_level(logging.DEBUG)
    SENDERS[kind]()

    assert [r for r in caplog.records if r.levelno >= logging.ERROR or r.exc_info] == []
    # Airflow's own loggers (the notifiers, hooks) write through structlog, not caplog.
    output = "".join(capfd.readouterr())
    assert "[error" not in output and "Traceback" not in output, output
    [skipped] = [r for r in caplog.records if "skipped" in r.message]
    assert skipped.levelno == logging.WARNING
    assert f"slack ({UNDEFINED_SLACK})" in skipped.message
    assert "python -m fhir_pipeline.alerts check" in skipped.message
    [record] = read_pages(slack_without_connection)
    assert (record["kind"], record["dag_id"]) == (kind, "fhir_batch_pipeline")


def test_a_channel_that_fails_to_deliver_does_not_lose_the_page(channels, monkeypatch, caplog):
    channels("slack")
    nobody = json.dumps({"conn_type": "slackwebhook", "password": f"http://127.0.0.1:{free_port()}/x"})
    monkeypatch.setenv("AIRFLOW_CONN_SLACK_DEFAULT", nobody)
    alerts.page_on_call(failure_context())

    assert any("page not delivered to slack" in r.message for r in caplog.records)
    [record] = read_pages(alerts.log_path())
    assert record["kind"] == "task_failed"
