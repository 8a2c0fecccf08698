"""The batch and ML DAGs under a real Airflow, their Spark jobs on a real Spark standalone
cluster (tools/spark_cluster.py: a master and two one-core workers on 127.0.0.1), landing
and lakehouse on Azurite through abfss://: driver and executors share nothing but
storage. The tasks' spark-submit (compute.SparkJobOperator, client mode) starts in an
empty folder with the repository off PYTHONPATH and FHIR_INCLUDE_DIR unset; the workers
start with a clean environment and the executors run the shipped Python environment
(tools/executor_env.py, compute.archives). One worker is killed in the middle of silver.
The same jobs in local[2] on a local lakehouse must give the same silver and gold tables.
"""

from __future__ import annotations

import ast
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from fhir_contract import job_command_line
from spark_jobs import bronze_ingest, gold_aggregate, lineage, silver_normalize
from spark_jobs.lakehouse import read_table
from spark_jobs.session import configure_azure_storage
from tests.conftest import AZURITE_ACCOUNT
from tests.integration.conftest import (
    RUN_DAY,
    TRAINING_SKIPPED,
    assert_success,
    asset_triggered_run,
    at_schedule,
)
from tests.integration.test_azure_e2e import upload_extract
from tests.lakehouse_helpers import TEST_PHI_KEY
from tools import executor_env, spark_cluster
from tools.compare_lakehouses import table_checksum, tables

pytestmark = [pytest.mark.e2e, pytest.mark.cluster]

# abfss:// as in production: FHIR_AZURE_STORAGE_ENDPOINT makes it plain HTTP to Azurite.
LANDING = f"abfss://cluster-landing@{AZURITE_ACCOUNT}.dfs.core.windows.net"
LAKEHOUSE = f"abfss://cluster-lakehouse@{AZURITE_ACCOUNT}.dfs.core.windows.net/lakehouse"
EXTRACT = {"patients": 40, "seed": 3, "history_days": 90}
KILLED_INDEX = 2  # the worker killed mid-silver
KILLED = f"worker-{KILLED_INDEX}"


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    started = time.monotonic()
    cluster = spark_cluster.Cluster.start_on_free_ports(tmp_path_factory.mktemp("cluster"))
    print(f"cluster up in {time.monotonic() - started:.1f}s")
    try:
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture(scope="module")
def on_cluster(start_airflow, azurite, cluster, tmp_path_factory):
    """Airflow whose tasks spark-submit to the cluster, in client mode."""
    root = tmp_path_factory.mktemp("e2e-cluster")
    upload_extract(azurite.container("cluster-landing"), root, RUN_DAY, **EXTRACT)
    azurite.container("cluster-lakehouse")
    airflow = start_airflow(
        "cluster",
        {
            "FHIR_LANDING_URI": LANDING,
            "FHIR_LAKEHOUSE_URI": LAKEHOUSE,
            "MLFLOW_TRACKING_URI": f"sqlite:///{root}/mlflow.db",
            "OPENLINEAGE__TRANSPORT": json.dumps(
                {"type": "file", "log_file_path": str(root / "lineage.jsonl"), "append": True}
            ),
            "AIRFLOW_CONN_WASB_DEFAULT": json.dumps(
                {"conn_type": "wasb", "extra": {"connection_string": azurite.connection_string}}
            ),
            **spark_cluster.airflow_environment(cluster, executor_env.build()),
            **azurite.spark_environment,
        },
        job_server=False,
    )
    for dag_id in ("fhir_batch_pipeline", "fhir_ml_training"):
        airflow.wait_for_dag(dag_id)
        airflow.unpause(dag_id)
    yield airflow, root
    airflow.stop()


def tasks_started_on_killed(cluster, known_apps: set[Path]) -> int:
    """Tasks the executor of a new application on the worker to kill has started so far."""
    started = 0
    for app in set(cluster.work_dir(KILLED_INDEX).glob("app-*")) - known_apps:
        for log in app.glob("*/stderr"):
            started += log.read_text(errors="replace").count("Running task")
    return started


def kill_a_worker_mid_silver(airflow, cluster, run_id: str) -> None:
    """Once silver's executor on KILLED has started a few tasks, SIGKILL that worker's
    process group; start it again when silver has ended."""
    deadline = time.monotonic() + 900
    known_apps: set[Path] = set()
    while airflow.task_states("fhir_batch_pipeline", run_id).get("silver_normalize") != "running":
        assert time.monotonic() < deadline, airflow.task_states("fhir_batch_pipeline", run_id)
        known_apps = set(cluster.work_dir(KILLED_INDEX).glob("app-*"))
        time.sleep(1)
    while tasks_started_on_killed(cluster, known_apps) < 3:
        assert time.monotonic() < deadline, "silver never ran a task on the worker to kill"
        assert airflow.task_states("fhir_batch_pipeline", run_id).get("silver_normalize") == "running"
        time.sleep(0.5)
    cluster.kill(KILLED)
    print(f"killed {KILLED} mid-silver")
    while airflow.task_states("fhir_batch_pipeline", run_id).get("silver_normalize") in ("running", "queued"):
        assert time.monotonic() < deadline
        time.sleep(1)
    cluster.launch(KILLED)
    while cluster.alive_workers() < spark_cluster.WORKERS:
        assert time.monotonic() < deadline, f"{KILLED} did not register again"
        time.sleep(0.5)


@pytest.fixture(scope="module")
def batch_run(on_cluster, cluster):
    airflow, _ = on_cluster
    started = time.monotonic()
    airflow.trigger("fhir_batch_pipeline", "on_cluster", at_schedule(RUN_DAY), {"lookback_days": 1})
    kill_a_worker_mid_silver(airflow, cluster, "on_cluster")
    run = airflow.wait_for_run("fhir_batch_pipeline", "on_cluster", timeout=1800)
    assert_success(airflow, "fhir_batch_pipeline", run)
    seconds = {
        ti["task_id"]: round(ti["duration"] or 0, 1)
        for ti in airflow.task_instances("fhir_batch_pipeline", "on_cluster")
    }
    print(f"batch run on the cluster: {time.monotonic() - started:.0f} s, tasks {seconds}")
    return run


# Its module fixtures (Airflow, the batch run on the cluster) count towards its timeout.
@pytest.mark.timeout(2400)
def test_the_batch_dag_on_the_cluster_writes_what_local_mode_writes(
    spark, on_cluster, batch_run, cluster, tmp_path, azurite, monkeypatch
):
    airflow, root = on_cluster
    silver = next(
        ti
        for ti in airflow.task_instances("fhir_batch_pipeline", "on_cluster")
        if ti["task_id"] == "silver_normalize"
    )
    log = airflow.task_log("fhir_batch_pipeline", "on_cluster", "silver_normalize", silver["try_number"])
    if silver["try_number"] == 1:  # Spark ran the lost executor's tasks again on the other
        assert "Lost executor" in log, log[-3000:]
        print("the worker was lost mid-silver: Spark retried its tasks, the task did not retry")
    else:
        print(f"the worker was lost mid-silver: the task retried (try {silver['try_number']})")
    assert "spark://127.0.0.1" in log
    # The PHI key reached the jobs through their environment: no log shows it.
    for ti in airflow.task_instances("fhir_batch_pipeline", "on_cluster"):
        task_log = airflow.task_log("fhir_batch_pipeline", "on_cluster", ti["task_id"], ti["try_number"])
        assert TEST_PHI_KEY.decode() not in task_log, ti["task_id"]
    # Executors ran in their own work dirs, from the shipped environment.
    for index in (1, 2):
        assert list(cluster.work_dir(index).glob(f"app-*/*/{spark_cluster.EXECUTOR_ENVIRONMENT}/bin/python"))

    # The same jobs in local[2], on the extract uploaded, into a local lakehouse.
    local = tmp_path / "lakehouse"
    arguments = {"lakehouse": str(local)}
    monkeypatch.setenv("FHIR_PHI_HASH_KEY", TEST_PHI_KEY.decode())  # the deployment's key
    bronze_ingest.main(
        job_command_line(
            "bronze_ingest", landing=str(root / "extract"), run_date=RUN_DAY, run_id="on_cluster", **arguments
        ),
        spark=spark,
    )
    silver_normalize.main(job_command_line("silver_normalize", run_date=RUN_DAY, **arguments), spark=spark)
    gold_aggregate.main(job_command_line("gold_aggregate", as_of=RUN_DAY, **arguments), spark=spark)

    configure_azure_storage(spark, azurite.spark_environment)
    differences, checksums = {}, {}
    for layer in ("silver", "gold"):
        names = tables(local, layer)
        assert names, f"no {layer} tables in the local run"
        for name in sorted(names):
            expected = table_checksum(read_table(spark, str(local / layer / name)))
            actual = table_checksum(read_table(spark, f"{LAKEHOUSE}/{layer}/{name}"))
            checksums[f"{layer}/{name}"] = actual
            if actual != expected:
                differences[f"{layer}/{name}"] = (actual, expected)
            assert expected[0] > 0 or layer == "gold", f"{layer}/{name} is empty"
    print("cluster tables (rows, checksum):", checksums)
    assert not differences, f"cluster vs local (rows, checksum): {differences}"

    # Lineage through spark-submit: silver's run is a child of its task, its tables on abfss://.
    events = [json.loads(line) for line in (root / "lineage.jsonl").read_text().splitlines()]
    task_runs = {
        e["run"]["runId"] for e in events if e["job"]["name"] == "fhir_batch_pipeline.silver_normalize"
    }
    silver_job = [
        e
        for e in events
        if e["job"]["name"] == "fhir_spark_jobs.silver_normalize" and e["eventType"] == "COMPLETE"
    ][-1]
    assert silver_job["run"]["facets"]["parent"]["run"]["runId"] in task_runs
    lakehouse_namespace, lakehouse_path = lineage.dataset(LAKEHOUSE)
    assert {(d["namespace"], d["name"]) for d in silver_job["outputs"]} == {
        (lakehouse_namespace, f"{lakehouse_path}/silver/{name}") for name in tables(local, "silver")
    }


def test_the_gold_asset_starts_the_ml_dag_on_the_cluster(on_cluster, batch_run):
    """40 patients hold too few labelled rows for either model (test_pipeline_e2e trains
    on 800 with two years of history): train_models runs on the cluster and skips each
    model with its reason, and the summary it wrote to abfss:// is read on the Airflow
    side."""
    airflow, _ = on_cluster
    run_id = asset_triggered_run(airflow, "fhir_ml_training", timeout=300)
    run = airflow.wait_for_run("fhir_ml_training", run_id, timeout=1800)
    assert_success(airflow, "fhir_ml_training", run)
    assert airflow.task_states("fhir_ml_training", run_id) == TRAINING_SKIPPED
    train_log = airflow.task_log("fhir_ml_training", run_id, "train_models")
    assert "spark://127.0.0.1" in train_log
    for model in ("fhir_diabetes_risk", "fhir_readmission_30d"):
        assert f"{model} not trained: not enough labelled rows" in train_log, model
    pages_log = airflow.task_log("fhir_ml_training", run_id, "page_stale_champions")
    assert f"train_models: 0 page(s) from {LAKEHOUSE}/_job_summaries/" in pages_log


EXECUTOR_PROBE = """
import sys
from pyspark.sql import SparkSession

def where(_):
    import sys, pandas
    packages = [p for p in sys.path if "site-packages" in p and "pyspark" not in p]
    return sys.executable, pandas.__file__, packages

spark = SparkSession.builder.getOrCreate()
for row in set(map(repr, spark.sparkContext.parallelize(range(4), 4).map(where).collect())):
    print("EXECUTOR", row)
print("DRIVER", repr(sys.executable))
"""


def test_executors_run_the_shipped_python_environment(cluster, tmp_path):
    """Not the driver's interpreter, even when PYSPARK_PYTHON names it (as the task's
    environment does for local runs): spark.pyspark.python wins on the executors."""
    app = tmp_path / "probe.py"
    app.write_text(EXECUTOR_PROBE)
    conf = [arg for key, value in spark_cluster.job_conf().items() for arg in ("--conf", f"{key}={value}")]
    command = [
        "spark-submit", "--master", cluster.master_url, *conf, "--conf", "spark.ui.enabled=false",
        # The job starts once both executors have registered, so each worker runs a task.
        "--conf", "spark.scheduler.minRegisteredResourcesRatio=1.0",
        "--archives", spark_cluster.executor_archive(executor_env.build()), str(app),
    ]  # fmt: skip
    env = {"PATH": os.environ["PATH"], "HOME": os.environ.get("HOME", "/"), "PYSPARK_PYTHON": sys.executable}
    finished = subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert finished.returncode == 0, finished.stderr[-3000:]
    executors = [line for line in finished.stdout.splitlines() if line.startswith("EXECUTOR ")]
    assert len(executors) == 2, finished.stdout  # one per worker, each in its own work dir
    for line in executors:
        executable, pandas_file, site_packages = ast.literal_eval(line.removeprefix("EXECUTOR "))
        shipped = f"{Path(executable).parent.parent}/"
        assert executable.endswith(f"/{spark_cluster.EXECUTOR_ENVIRONMENT}/bin/python3.11")
        assert str(cluster.root) in executable
        assert pandas_file.startswith(shipped)
        assert all(path.startswith(shipped) for path in site_packages), site_packages
    assert f"DRIVER {sys.executable!r}" in finished.stdout
