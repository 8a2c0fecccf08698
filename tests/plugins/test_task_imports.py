"""What an Airflow task process imports when a Spark job task runs, up to the launch
of the job: neither pyspark nor MLflow nor the jobs' package (they run in the Spark
driver), only the dependency-free job contract (fhir_contract). For each backend, every
Spark job task of every DAG, and the task that pages a job's summary, runs in a fresh
interpreter: spark-submit with a stand-in binary that exits 0; the job server and the
Databricks Jobs API with one local stand-in that answers "exit status: 0" to a job and
PENDING to a submitted run, where the Databricks task defers to the triggerer."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from tests.conftest import fake_spark_submit, free_port

REPO = Path(__file__).resolve().parents[2]

PROBE = textwrap.dedent(
    """
    import json, sys, threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    class Backends(BaseHTTPRequestHandler):
        def log_message(self, *args):
            pass

        def _send(self, body):
            self.send_response(200)
            self.end_headers()
            self.wfile.write(body)

        def do_POST(self):
            self.rfile.read(int(self.headers["Content-Length"]))
            posted.append(self.path)
            if self.path.endswith("/jobs/runs/submit"):
                return self._send(b'{"run_id": 1}')
            self._send(b"exit status: 0\\n")

        def do_GET(self):
            state = {"life_cycle_state": "PENDING", "state_message": ""}
            self._send(json.dumps({"run_id": 1, "job_id": 7, "state": state, "run_page_url": "http://dbx/1"}).encode())

    posted = []  # each job started on the job server or submitted to Databricks
    server = ThreadingHTTPServer(("127.0.0.1", int(sys.argv[2])), Backends)
    threading.Thread(target=server.serve_forever, daemon=True).start()

    from airflow.models import DagBag
    from airflow.sdk.exceptions import TaskDeferred
    from fhir_pipeline.compute import SparkJobOperator
    from fhir_pipeline.databricks_job import DatabricksJobOperator
    from fhir_pipeline.job_server_job import JobServerOperator

    class TaskInstance:
        def xcom_push(self, key, value):
            pass

    PAGE_TASKS = ("page_stale_champions", "page_drift")
    ran = []
    for dag in DagBag(dag_folder=sys.argv[3]).dags.values():
        for task in dag.tasks:
            if task.task_id in PAGE_TASKS:  # each reads the summary its job wrote
                task.python_callable(run_id="manual__probe")
                ran.append(f"{dag.dag_id}.{task.task_id}")
                continue
            if isinstance(task, SparkJobOperator):
                task._spark_binary = sys.argv[1]
            elif not isinstance(task, (JobServerOperator, DatabricksJobOperator)):
                continue
            try:
                task.execute(context={"ti": TaskInstance()})
            except TaskDeferred:
                pass
            ran.append(f"{dag.dag_id}.{task.task_id}")
    loaded = [m for m in sys.modules if m.split(".")[0] in ("pyspark", "mlflow", "py4j", "spark_jobs")]
    print(json.dumps({"ran": ran, "loaded": loaded, "posted": len(posted)}))
    """
)


@pytest.mark.parametrize("backend", ["spark_submit", "job_server", "databricks"])
def test_a_spark_task_imports_no_spark_mlflow_or_job_module(backend, tmp_path):
    binary = fake_spark_submit(tmp_path, exit_code=0)
    port = free_port()
    env = {
        "FHIR__COMPUTE__BACKEND": backend,
        "FHIR__COMPUTE__JOB_SERVER_URL": f"http://127.0.0.1:{port}",
        "FHIR_LAKEHOUSE_URI": str(tmp_path / "lakehouse"),
        "AIRFLOW_CONN_DATABRICKS_DEFAULT": json.dumps(
            {"conn_type": "databricks", "host": "127.0.0.1", "port": port, "schema": "http", "password": "t"}
        ),
    }
    result = subprocess.run(
        [sys.executable, "-c", PROBE, binary, str(port), str(REPO / "dags")],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert {
        "fhir_batch_pipeline.silver_normalize",
        "fhir_ml_training.train_models",
        "fhir_ml_training.page_stale_champions",
        "fhir_ml_training.page_drift",
    } <= set(report["ran"])
    assert report["loaded"] == [], f"{backend}: {report['loaded']}"
    # Each Spark task got as far as its request (spark-submit's stand-in binary posts nothing).
    spark_tasks = len(report["ran"]) - 2  # all but the two page tasks
    assert report["posted"] == (0 if backend == "spark_submit" else spark_tasks)
