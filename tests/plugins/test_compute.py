"""The Spark task factory: the spark-submit backend (packaging, secrets, permanent
failures) and the Databricks backend, driven through a full run lifecycle against
a local HTTP server speaking the Jobs API endpoints the operator calls.

Databricks itself cannot be reached from here: these tests pin the exact request
JSON and the operator's behaviour; the live path is untested (see README)."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import threading
import zipfile
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib.metadata import version
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pyarrow.parquet as pq
import pytest
from airflow.sdk.exceptions import AirflowException, AirflowSkipException, TaskDeferred
from fhir_pipeline import compute, config, streaming
from fhir_pipeline.compute import PermanentJobFailure, SparkJobOperator, databricks_run_json, spark_job
from fhir_pipeline.provider_internals import spark_submit_command
from fhir_pipeline.tasks import retry_policy

from fhir_contract import JVM_OPTIONS, LINEAGE_PARENT_ENV, LINEAGE_ROOT_PARENT_ENV, class_archive_option
from tests.conftest import fake_spark_submit

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def use_settings(monkeypatch):
    """Override pipeline settings through the environment, as a deployment would."""

    def apply(**overrides):
        for key, value in overrides.items():
            monkeypatch.setenv(f"FHIR__{key.upper()}", value)
        config.settings.cache_clear()

    yield apply
    config.settings.cache_clear()


def test_spark_jobs_package_holds_every_job_module_subpackage_and_the_contract():
    archive = compute.package_spark_jobs()
    names = set(zipfile.ZipFile(archive).namelist())
    sources = [*(REPO / "spark_jobs").rglob("*.py"), REPO / "fhir_contract.py"]
    assert {p.relative_to(REPO).as_posix() for p in sources} == names
    assert {"spark_jobs/sof/__init__.py", "spark_jobs/bronze/records.py", "fhir_contract.py"} <= names
    assert compute.package_spark_jobs() == archive  # rebuilt only when sources change


def test_a_view_job_runs_through_spark_submit_with_the_repository_off_the_path(tmp_path):
    """spark_jobs and its view engine come from the shipped zip alone (as on a cluster):
    no PYTHONPATH, started from another folder."""
    synthea = REPO / "tests" / "fixtures" / "fhir-samples" / "synthea-ndjson-pathling"
    out = tmp_path / "immunizations"
    env = {name: value for name, value in os.environ.items() if name != "PYTHONPATH"}
    env.update(
        FHIR_INCLUDE_DIR=str(REPO / "include"),
        FHIR_PHI_HASH_KEY="spark-submit-test-key-0123456789abcdef",
        PYSPARK_PYTHON=sys.executable,
    )
    command = [
        str(Path(sys.executable).parent / "spark-submit"),
        "--master", "local[1]",
        "--conf", "spark.ui.enabled=false",
        "--jars", compute.spark_jars(),
        "--py-files", compute.package_spark_jobs(),
        str(REPO / "spark_jobs" / "sof" / "__main__.py"),
        "run", "--view", str(REPO / "include" / "views" / "immunizations.json"),
        "--source", str(synthea), "--out", str(out), "--format", "parquet",
    ]  # fmt: skip
    finished = subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert finished.returncode == 0, finished.stderr[-3000:]
    assert "view immunizations: 102 rows written" in finished.stdout + finished.stderr
    written = pq.read_table(out).to_pylist()
    expected = [json.loads(line) for line in (synthea / "Immunization.ndjson").read_text().splitlines()]
    assert len(written) == len(expected) == 102
    assert {row["immunization_id"] for row in written} == {resource["id"] for resource in expected}
    assert not any("Patient/" in (row["patient_id_hashed"] or "") for row in written)


def test_job_environment_carries_secrets_without_the_command_line(monkeypatch):
    monkeypatch.setenv("FHIR_PHI_HASH_KEY", "a-secret-that-must-not-leak-0123")
    env = compute.job_environment()
    assert env["FHIR_PHI_HASH_KEY"] == "a-secret-that-must-not-leak-0123"
    assert env["FHIR_INCLUDE_DIR"] == str(REPO / "include")
    operator = spark_job("bronze_ingest", run_date="2026-11-20")
    assert "a-secret" not in " ".join(operator.application_args)
    from airflow.sdk._shared.secrets_masker import redact

    assert "a-secret-that-must-not-leak-0123" not in str(redact("key=a-secret-that-must-not-leak-0123"))


def test_a_job_rejecting_its_arguments_fails_permanently():
    """Real spark-submit, real job: argparse exits 2, so the task must not retry."""
    operator = SparkJobOperator(
        task_id="bronze_ingest", job="bronze_ingest", job_args=["--run-date", "not-a-date"]
    )
    with pytest.raises(PermanentJobFailure, match="Not retrying"):
        operator.execute(context={})


def test_a_job_with_nothing_to_do_skips_the_task(tmp_path):
    """Exit status 99 (fhir_contract.EXIT_SKIPPED): skipped, not failed, no page."""
    operator = SparkJobOperator(task_id="train_models", job="train_models", job_args=[])
    operator._spark_binary = fake_spark_submit(tmp_path, exit_code=99)
    with pytest.raises(AirflowSkipException, match="train_models had nothing to do"):
        operator.execute(context={})


def test_other_failures_stay_retryable(tmp_path):
    operator = SparkJobOperator(task_id="bronze_ingest", job="bronze_ingest", job_args=[])
    operator._spark_binary = fake_spark_submit(tmp_path, exit_code=1)
    with pytest.raises(AirflowException) as raised:
        operator.execute(context={})
    assert not isinstance(raised.value, PermanentJobFailure)


def test_spark_submit_starts_the_driver_from_the_class_archive(tmp_path):
    """The command the task runs carries compute.spark_conf plus the JVM options and the
    archive `make setup` recorded."""
    operator = SparkJobOperator(task_id="bronze_ingest", job="bronze_ingest", job_args=[])
    operator._spark_binary = fake_spark_submit(tmp_path, exit_code=1)
    with pytest.raises(AirflowException):
        operator.execute(context={})
    command = spark_submit_command(operator._hook, operator.application)
    archive = class_archive_option()
    assert archive is not None, "`make setup` records .local/spark-classes.jsa"
    assert f"spark.driver.extraJavaOptions={JVM_OPTIONS} {archive}" in command
    for key, value in config.settings().compute.spark_conf.items():
        assert f"{key}={value}" in command


def test_the_driver_starts_off_the_repository_with_the_configured_archives(
    tmp_path, use_settings, monkeypatch
):
    """As on a cluster: from an empty folder, PYTHONPATH and FHIR_INCLUDE_DIR empty, the
    executors' environment (compute.archives) shipped beside include/."""
    monkeypatch.setenv("FHIR_INCLUDE_DIR", str(REPO / "include"))
    use_settings(compute__archives="/envs/executor.tar.gz#environment")
    launch = tmp_path / "launch.json"
    operator = SparkJobOperator(task_id="bronze_ingest", job="bronze_ingest", job_args=[])
    operator._spark_binary = fake_spark_submit(tmp_path, exit_code=0, launch_file=launch)
    before = os.getcwd()
    operator.execute(context={})
    launched = json.loads(launch.read_text())
    assert os.getcwd() == before
    assert launched["cwd"] != before and not Path(launched["cwd"]).exists()  # a fresh folder, removed
    assert launched["env"]["PYTHONPATH"] == launched["env"]["FHIR_INCLUDE_DIR"] == ""
    archives = launched["argv"][launched["argv"].index("--archives") + 1].split(",")
    assert archives == [f"{compute.package_include()}#include", "/envs/executor.tar.gz#environment"]


def test_the_job_gets_its_task_as_its_lineage_parent_through_its_environment(tmp_path, monkeypatch):
    parents = {"parent": "ns/fhir_batch_pipeline.bronze_ingest/run-1", "root": "ns/fhir_batch_pipeline/run-0"}
    monkeypatch.setattr(compute, "lineage_parents", lambda context: parents)
    launch = tmp_path / "launch.json"
    operator = SparkJobOperator(task_id="bronze_ingest", job="bronze_ingest", job_args=[])
    operator._spark_binary = fake_spark_submit(tmp_path, exit_code=0, launch_file=launch)
    operator.execute(context={})
    env = json.loads(launch.read_text())["env"]
    assert (env[LINEAGE_PARENT_ENV], env[LINEAGE_ROOT_PARENT_ENV]) == (parents["parent"], parents["root"])


def test_no_lineage_parent_while_the_openlineage_provider_is_off():
    assert compute.lineage_parents({}) == {}


def test_retry_policy_fails_permanent_errors_at_once():
    policy = retry_policy()
    permanent = policy.evaluate(PermanentJobFailure("bad input"), try_number=1, max_tries=4, context={})
    transient = policy.evaluate(ConnectionError("reset"), try_number=1, max_tries=4, context={})
    assert permanent.action.value == "fail"
    assert transient.action.value != "fail"


def test_databricks_backend_submits_the_exact_run_json(use_settings):
    use_settings(compute__backend="databricks")
    operator = spark_job("silver_normalize", lakehouse="abfss://x", run_date="{{ ds }}")
    cluster = json.loads((REPO / "include" / "databricks" / "job_cluster.json").read_text())
    assert type(operator).__name__ == "DatabricksJobOperator"
    assert operator.deferrable
    assert operator.json == {
        "run_name": "fhir-silver_normalize",
        "tasks": [
            {
                "task_key": "silver_normalize",
                "new_cluster": cluster,
                "spark_python_task": {
                    "python_file": "/Workspace/Repos/fhir-lakehouse/main/spark_jobs/silver_normalize.py",
                    "parameters": ["--lakehouse", "abfss://x", "--run-date", "{{ ds }}"],
                },
                "libraries": [{"pypi": {"package": f"openlineage-python=={version('openlineage-python')}"}}],
                "timeout_seconds": 0,
            }
        ],
    }
    # The PHI key reaches the job from a Databricks secret scope, never in plain text.
    assert cluster["spark_env_vars"]["FHIR_PHI_HASH_KEY"].startswith("{{secrets/")


class JobsApi(BaseHTTPRequestHandler):
    """The Databricks Jobs API 2.2 endpoints DatabricksSubmitRunOperator calls."""

    submitted: list[dict] = []
    polls: dict[int, int] = {}
    seen_states: dict[int, list[str]] = {}
    outcome = {101: "SUCCESS", 102: "FAILED", 103: "FAILED", 104: "FAILED"}
    # What runs/get-output says of each failed run's task: how its Python job ended.
    errors = {
        102: "PermanentJobError: No bronze tables",
        103: "JobSkipped: no gold features yet at abfss://lake/gold/chronic_disease_features",
        104: "Py4JJavaError: An error occurred while calling o41.save",
    }
    run_now: list[dict] = []  # the streaming job's run-now calls
    listed: list[dict] = []  # its runs/list queries
    active_runs: list[int] = []

    def log_message(self, *args):
        pass

    def _body(self) -> dict:
        length = int(self.headers.get("Content-Length") or 0)
        body = json.loads(self.rfile.read(length) or b"{}") if length else {}
        query = {k: v[0] for k, v in parse_qs(urlsplit(self.path).query).items()}
        return {**query, **body}

    def _reply(self, payload: dict, status: int = 200) -> None:
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_POST(self):  # noqa: N802
        assert self.headers["Authorization"] == "Bearer dapi-test-token"
        if urlsplit(self.path).path == "/api/2.2/jobs/runs/submit":
            JobsApi.submitted.append(self._body())
            return self._reply({"run_id": 100 + len(JobsApi.submitted)})
        if urlsplit(self.path).path == "/api/2.2/jobs/run-now":
            JobsApi.run_now.append(self._body())
            return self._reply({"run_id": 900, "number_in_job": 900})
        return self._reply({"error_code": "NOT_FOUND"}, 404)

    def do_GET(self):  # noqa: N802
        path, body = urlsplit(self.path).path, self._body()
        if path == "/api/2.2/jobs/runs/list":
            JobsApi.listed.append(body)
            return self._reply({"runs": [{"run_id": r} for r in JobsApi.active_runs], "has_more": False})
        run_id = int(body["run_id"])
        if path == "/api/2.2/jobs/runs/get":
            poll = JobsApi.polls[run_id] = JobsApi.polls.get(run_id, 0) + 1
            life_cycle = "PENDING" if poll <= 3 else "RUNNING" if poll == 4 else "TERMINATED"
            JobsApi.seen_states.setdefault(run_id, []).append(life_cycle)
            state = {"life_cycle_state": life_cycle, "state_message": ""}
            if life_cycle == "TERMINATED":
                state["result_state"] = JobsApi.outcome[run_id]
                state["state_message"] = "Workload failed" if state["result_state"] == "FAILED" else ""
            task_state = dict(state)
            return self._reply(
                {
                    "run_id": run_id,
                    "job_id": 7,
                    "state": state,
                    "run_page_url": f"http://databricks.local/#job/7/run/{run_id}",
                    "tasks": [
                        {
                            "run_id": run_id * 10,
                            "task_key": "silver_normalize",
                            "state": task_state,
                            "start_time": 1,
                        }
                    ],
                }
            )
        if path == "/api/2.2/jobs/runs/get-output":
            return self._reply({"error": JobsApi.errors[run_id // 10], "metadata": {}})
        return self._reply({"error_code": "NOT_FOUND"}, 404)


@pytest.fixture
def databricks(monkeypatch, use_settings):
    server = ThreadingHTTPServer(("127.0.0.1", 0), JobsApi)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    monkeypatch.setenv(
        "AIRFLOW_CONN_DATABRICKS_DEFAULT",
        json.dumps(
            {
                "conn_type": "databricks",
                "host": "127.0.0.1",
                "port": server.server_port,
                "schema": "http",
                "password": "dapi-test-token",
            }
        ),
    )
    use_settings(compute__backend="databricks", compute__databricks_polling_seconds="0.05")
    JobsApi.submitted.clear()
    JobsApi.polls.clear()
    JobsApi.seen_states.clear()
    JobsApi.run_now.clear()
    JobsApi.listed.clear()
    JobsApi.active_runs.clear()
    yield server
    server.shutdown()


def _as_sent(payload):
    if isinstance(payload, dict):
        return {k: _as_sent(v) for k, v in payload.items()}
    if isinstance(payload, list):
        return [_as_sent(v) for v in payload]
    if isinstance(payload, bool):
        return payload
    return str(payload) if isinstance(payload, int | float) else payload


class RecordingTaskInstance:
    def __init__(self):
        self.xcom = {}

    def xcom_push(self, key, value):
        self.xcom[key] = value


def _run_through_lifecycle(operator):
    """What the worker and the triggerer do: execute, defer, poll, resume."""
    context = {"ti": RecordingTaskInstance()}
    with pytest.raises(TaskDeferred) as deferred:
        operator.execute(context)
    trigger = deferred.value.trigger

    async def first_event():
        async for event in trigger.run():
            return event

    event = asyncio.run(first_event())
    return context, getattr(operator, deferred.value.method_name), event.payload


def test_databricks_run_succeeds_through_pending_running_terminated(databricks):
    operator = spark_job("silver_normalize", run_date="2026-11-20")
    context, resume, payload = _run_through_lifecycle(operator)
    resume(context, payload)  # no exception: success
    # On the wire the provider sends numbers as strings (num_workers "2"); the rest is ours as built.
    assert JobsApi.submitted == [
        _as_sent(databricks_run_json("silver_normalize", ["--run-date", "2026-11-20"]))
    ]
    states = JobsApi.seen_states[101]
    assert [s for i, s in enumerate(states) if i == 0 or states[i - 1] != s] == [
        "PENDING",
        "RUNNING",
        "TERMINATED",
    ]
    assert context["ti"].xcom["run_id"] == 101


def test_a_databricks_job_gets_its_task_as_its_lineage_parent(databricks, monkeypatch):
    parents = {
        "parent": "ns/fhir_batch_pipeline.silver_normalize/run-1",
        "root": "ns/fhir_batch_pipeline/run-0",
    }
    monkeypatch.setattr(compute, "lineage_parents", lambda context: parents)
    _run_through_lifecycle(spark_job("silver_normalize", run_date="2026-11-20"))
    env = JobsApi.submitted[-1]["tasks"][0]["new_cluster"]["spark_env_vars"]
    assert (env[LINEAGE_PARENT_ENV], env[LINEAGE_ROOT_PARENT_ENV]) == (parents["parent"], parents["root"])
    assert env["FHIR_PHI_HASH_KEY"].startswith("{{secrets/")  # the cluster's own variables kept


def _databricks_run(run_id: int):
    """The operator's run `run_id` through its life cycle: (resume, context, trigger payload)."""
    JobsApi.submitted.extend({} for _ in range(run_id - 101))  # earlier runs take the lower ids
    operator = spark_job("silver_normalize", run_date="2026-11-20")
    context, resume, payload = _run_through_lifecycle(operator)
    assert JobsApi.seen_states[run_id][-1] == "TERMINATED"
    assert payload["errors"] == [
        {"task_key": "silver_normalize", "run_id": run_id * 10, "error": JobsApi.errors[run_id]}
    ]
    return resume, context, payload


def test_databricks_permanent_job_error_fails_the_task_without_retrying(databricks):
    """Bad input on Databricks fails at once, as exit status 2 does with spark-submit."""
    resume, context, payload = _databricks_run(102)
    with pytest.raises(PermanentJobFailure, match="silver_normalize failed permanently"):
        resume(context, payload)


def test_databricks_job_with_nothing_to_do_skips_the_task_with_its_reason(databricks):
    resume, context, payload = _databricks_run(103)
    with pytest.raises(AirflowSkipException, match="no gold features yet at abfss://lake/gold/"):
        resume(context, payload)


def test_databricks_other_failures_stay_retryable(databricks):
    resume, context, payload = _databricks_run(104)
    with pytest.raises(AirflowException, match="o41.save") as raised:
        resume(context, payload)
    assert not isinstance(raised.value, AirflowSkipException | PermanentJobFailure)
    assert retry_policy().evaluate(raised.value, try_number=1, max_tries=4, context={}).action.value != "fail"


def test_databricks_stream_is_found_by_its_active_runs_and_restarted_with_run_now(databricks, use_settings):
    use_settings(streaming__databricks_job_id="55")
    runner = streaming.stream_runner()
    assert isinstance(runner, streaming.DatabricksStream)

    assert not runner.alive()
    assert JobsApi.listed == [{"job_id": "55", "active_only": "true"}]
    assert runner.start() == 900
    assert JobsApi.run_now == [{"job_id": 55}]
    JobsApi.active_runs.append(900)
    assert runner.alive()
