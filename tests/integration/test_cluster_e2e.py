"""The batch jobs on a real Spark standalone cluster (tools/spark_cluster.py: a master and
two one-core workers on 127.0.0.1), landing and lakehouse on Azurite: driver and
executors share nothing but storage. Each job goes through the spark-submit command the
Airflow task builds (compute.SparkJobOperator), started from an empty folder with the
repository off PYTHONPATH and FHIR_INCLUDE_DIR unset; the workers start with a clean
environment and the executors run the shipped Python environment (tools/executor_env.py).
The same jobs in local[2] on a local lakehouse must give the same silver and gold tables.
"""

from __future__ import annotations

import ast
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from fhir_pipeline.compute import SparkJobOperator

from fhir_contract import job_command_line
from spark_jobs import bronze_ingest, gold_aggregate, silver_normalize
from spark_jobs.lakehouse import read_table
from spark_jobs.session import configure_azure_storage
from tests.conftest import AZURITE_ACCOUNT
from tests.integration.conftest import RUN_DAY
from tests.integration.test_azure_e2e import upload_extract
from tests.lakehouse_helpers import TEST_PHI_KEY
from tools import executor_env, spark_cluster
from tools.compare_lakehouses import table_checksum, tables

pytestmark = [pytest.mark.e2e, pytest.mark.cluster]

PHI_KEY = TEST_PHI_KEY.decode()
# abfss:// as in production: FHIR_AZURE_STORAGE_ENDPOINT makes it plain HTTP to Azurite.
LANDING = f"abfss://cluster-landing@{AZURITE_ACCOUNT}.dfs.core.windows.net"
LAKEHOUSE = f"abfss://cluster-lakehouse@{AZURITE_ACCOUNT}.dfs.core.windows.net/lakehouse"


def job_arguments(landing: str, lakehouse: str) -> list[tuple[str, dict]]:
    return [
        (
            "bronze_ingest",
            {"landing": landing, "lakehouse": lakehouse, "run_date": RUN_DAY, "run_id": "cluster"},
        ),
        ("silver_normalize", {"lakehouse": lakehouse, "run_date": RUN_DAY}),
        ("gold_aggregate", {"lakehouse": lakehouse, "as_of": RUN_DAY}),
    ]


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    started = time.monotonic()
    cluster = spark_cluster.Cluster.on_free_ports(tmp_path_factory.mktemp("cluster"))
    cluster.start()
    print(f"cluster up in {time.monotonic() - started:.1f}s")
    try:
        yield cluster
    finally:
        cluster.stop()


def submit(cluster, job: str, arguments: dict, cwd, env: dict[str, str]) -> float:
    """Run a job through the task's own spark-submit command; returns its seconds."""
    operator = SparkJobOperator(
        task_id=job,
        job=job,
        job_args=job_command_line(job, **arguments),
        archives=spark_cluster.executor_archive(executor_env.build()),
    )
    operator.prepare()
    operator.conf.update({**spark_cluster.job_conf(), "spark.ui.enabled": "false"})
    command = operator.submit_command()
    assert command[command.index("--master") + 1] == cluster.master_url
    assert PHI_KEY not in " ".join(command)
    started = time.monotonic()
    finished = subprocess.run(
        command,
        cwd=cwd,
        env={**env, **operator.env_vars},
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert finished.returncode == 0, f"{job} failed:\n" + "\n".join(
        line for line in finished.stderr.splitlines()[-80:] if not line.lstrip().startswith("at ")
    )
    return time.monotonic() - started


def test_jobs_on_a_standalone_cluster_write_what_local_mode_writes(
    cluster, azurite, spark, tmp_path, monkeypatch
):
    upload_extract(
        azurite.container("cluster-landing"), tmp_path, RUN_DAY, patients=40, seed=3, history_days=90
    )
    azurite.container("cluster-lakehouse")
    monkeypatch.setenv(
        "AIRFLOW_CONN_SPARK_DEFAULT",
        f'{{"conn_type": "spark", "host": "spark://127.0.0.1", "port": {cluster.master_port}, '
        '"extra": {"deploy-mode": "client"}}',
    )
    monkeypatch.setenv("FHIR_PHI_HASH_KEY", PHI_KEY)
    for name, value in azurite.spark_environment.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("FHIR_INCLUDE_DIR", raising=False)
    # The driver's environment: this machine's PATH (spark-submit, java) and nothing of
    # the repository: no PYTHONPATH, started from an empty folder.
    driver_env = {
        name: os.environ[name] for name in ("PATH", "HOME", "LANG", "JAVA_HOME") if name in os.environ
    }
    empty = tmp_path / "cwd"
    empty.mkdir()

    seconds = {
        job: submit(cluster, job, arguments, empty, driver_env)
        for job, arguments in job_arguments(LANDING, LAKEHOUSE)
    }
    print("cluster job seconds:", {job: round(s, 1) for job, s in seconds.items()})
    # Executors ran in their own work dirs, from the shipped environment.
    for index in (1, 2):
        assert list(cluster.work_dir(index).glob(f"app-*/*/{spark_cluster.EXECUTOR_ENVIRONMENT}/bin/python"))

    # The same jobs in local[2], same extract, on a local lakehouse.
    local = tmp_path / "lakehouse"
    mains = {
        "bronze_ingest": bronze_ingest,
        "silver_normalize": silver_normalize,
        "gold_aggregate": gold_aggregate,
    }
    for job, arguments in job_arguments(str(tmp_path / "extract"), str(local)):
        mains[job].main(job_command_line(job, **arguments), spark=spark)

    configure_azure_storage(spark, azurite.spark_environment)
    differences = {}
    for layer in ("silver", "gold"):
        names = tables(local, layer)
        assert names, f"no {layer} tables in the local run"
        for name in sorted(names):
            expected = table_checksum(read_table(spark, str(local / layer / name)))
            actual = table_checksum(read_table(spark, f"{LAKEHOUSE}/{layer}/{name}"))
            if actual != expected:
                differences[f"{layer}/{name}"] = (actual, expected)
            assert expected[0] > 0 or layer == "gold", f"{layer}/{name} is empty"
    assert not differences, f"cluster vs local (rows, checksum): {differences}"


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
