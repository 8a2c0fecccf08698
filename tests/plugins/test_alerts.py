"""On-call pages: real Slack-webhook and SMTP deliveries to local receivers, and the
exact PagerDuty Events v2 request (PagerDuty cannot be reached from here)."""

from __future__ import annotations

import asyncio
import json
from types import SimpleNamespace

import pytest
from airflow.sdk import DAG
from fhir_pipeline import alerts, config

from tests.conftest import alert_connections


@pytest.fixture
def channels(monkeypatch, http_receiver, smtp_receiver):
    def use(*names):
        for key, value in alert_connections(http_receiver, smtp_receiver).items():
            monkeypatch.setenv(key, value)
        monkeypatch.setenv("FHIR__ALERTS__CHANNELS", ",".join(names))
        config.settings.cache_clear()
        return http_receiver, smtp_receiver

    yield use
    config.settings.cache_clear()


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


def test_missed_deadline_pages_every_channel_from_the_triggerer_context(channels):
    http, smtp = channels("slack", "email")
    context = {
        "dag_run": {
            "dag_id": "fhir_batch_pipeline",
            "dag_run_id": "manual__2026-11-23T05:00:00",
            "logical_date": "2026-11-23T05:00:00+00:00",
            "queued_at": "2026-11-23T05:00:01+00:00",
            "state": "running",
        },
        "deadline": {"id": "d-1", "deadline_time": "2026-11-23 07:00:01+00:00"},
    }
    asyncio.run(alerts.page_deadline_missed(context=context))

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
