"""The providers' private APIs (plugins/fhir_pipeline/provider_internals.py) against the
installed providers: a provider upgrade that changes one fails here, by name."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

import pytest
from airflow.providers.apache.spark.hooks.spark_submit import SparkSubmitHook
from airflow.providers.databricks.hooks.databricks import DatabricksHook
from airflow.sdk.exceptions import AirflowException
from fhir_pipeline.provider_internals import (
    databricks_api_call,
    spark_submit_command,
    spark_submit_exit_status,
)

from tests.conftest import fake_spark_submit


def test_the_command_is_the_one_submit_runs_and_its_exit_status_is_read(tmp_path):
    recorded = tmp_path / "launch.json"
    binary = fake_spark_submit(tmp_path, exit_code=3, launch_file=recorded)
    hook = SparkSubmitHook(
        conn_id="spark_default", spark_binary=binary, name="probe", application_args=["--flag", "x"]
    )
    assert spark_submit_exit_status(hook) is None  # not submitted yet
    command = spark_submit_command(hook, "/jobs/probe.py")
    with pytest.raises(AirflowException):
        hook.submit("/jobs/probe.py")
    assert command[0] == binary
    assert json.loads(recorded.read_text())["argv"] == command[1:]
    assert command[-3:] == ["/jobs/probe.py", "--flag", "x"]
    assert spark_submit_exit_status(hook) == 3


def test_a_jobs_api_call_goes_through_the_hook(monkeypatch):
    received = []

    class JobsApi(BaseHTTPRequestHandler):
        def log_message(self, *args):
            pass

        def do_GET(self):  # noqa: N802
            url = urlsplit(self.path)
            received.append((url.path, parse_qs(url.query), self.headers["Authorization"]))
            data = json.dumps({"runs": [{"run_id": 5}]}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

    server = ThreadingHTTPServer(("127.0.0.1", 0), JobsApi)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    connection = {"conn_type": "databricks", "host": "127.0.0.1", "port": server.server_port}
    connection.update(schema="http", password="dapi-probe")
    monkeypatch.setenv("AIRFLOW_CONN_DATABRICKS_PROBE", json.dumps(connection))
    try:
        hook = DatabricksHook(databricks_conn_id="databricks_probe", retry_limit=1)
        reply = databricks_api_call(hook, "GET", "2.2/jobs/runs/list", {"job_id": 7, "active_only": "true"})
    finally:
        server.shutdown()
    assert reply == {"runs": [{"run_id": 5}]}
    assert received == [
        ("/api/2.2/jobs/runs/list", {"job_id": ["7"], "active_only": ["true"]}, "Bearer dapi-probe")
    ]
