"""The job server runs jobs in its warm driver as spark-submit would: the same tables,
the same exit statuses, each job's log streamed back to its caller."""

from __future__ import annotations

import json
import logging
import socket
import threading
import urllib.error
import urllib.request

import pytest
from airflow.sdk.exceptions import AirflowException, AirflowSkipException
from fhir_pipeline.compute import PermanentJobFailure
from fhir_pipeline.job_server_job import JobServerOperator, exit_status, job_request
from pyspark.sql import functions as F

from fhir_contract import EXIT_SKIPPED
from spark_jobs.job_server import JobLogHandler, JobServer, client_gone, job_session
from spark_jobs.lakehouse import read_table
from tests.conftest import free_port
from tests.lakehouse_helpers import RUN_DATE


@pytest.fixture(scope="module")
def job_server(spark):
    server = JobServer(("127.0.0.1", 0), spark)
    handler = JobLogHandler()
    logging.getLogger().addHandler(handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()
    logging.getLogger().removeHandler(handler)


def run(url: str, job: str, *args: str, lineage: dict | None = None) -> tuple[int | None, list[str]]:
    logged = []

    class Log:
        def info(self, _format, line):
            logged.append(line)

    with urllib.request.urlopen(job_request(url, job, list(args), lineage)) as response:
        status = exit_status((raw.decode().rstrip("\n") for raw in response), Log())
    return status, logged


def test_bronze_in_the_server_lands_what_bronze_in_its_own_driver_lands(
    spark, job_server, samples_lakehouse, tmp_path
):
    landing, lakehouse, counts = samples_lakehouse
    served = tmp_path / "lakehouse"
    args = ["--landing", str(landing), "--lakehouse", str(served), "--run-date", RUN_DATE.isoformat()]
    status, logged = run(job_server, "bronze_ingest", *args, "--run-id", "served")
    assert status == 0, logged
    assert any(f"read {counts['read']} = ingested {counts['ingested']}" in line for line in logged), logged

    def by_type(root):
        raw = read_table(spark, str(root / "bronze" / "fhir_raw"))
        return {r.resource_type: r["count"] for r in raw.groupBy("resource_type").count().collect()}

    assert by_type(served) == by_type(lakehouse)
    [run_log] = (
        read_table(spark, str(served / "bronze" / "ingest_runs"))
        .filter(F.col("run_id") == "served")
        .collect()
    )
    assert run_log.records_read == counts["read"]


def test_the_task_ends_as_with_spark_submit(job_server, tmp_path):
    def task(job: str, *args: str, url: str = job_server) -> JobServerOperator:
        return JobServerOperator(task_id=job, job=job, job_args=list(args), server_url=url)

    nothing_to_do = (
        *("--lakehouse", str(tmp_path / "empty"), "--as-of", RUN_DATE.isoformat()),
        *("--tracking-uri", f"sqlite:///{tmp_path}/mlflow.db"),
    )
    with pytest.raises(AirflowSkipException):
        task("train_models", *nothing_to_do).execute({})
    with pytest.raises(PermanentJobFailure):
        task("gold_aggregate", "--no-such-option").execute({})
    with pytest.raises(AirflowException, match="refused spark_jobs.os_system: 400"):
        task("os_system").execute({})
    with pytest.raises(AirflowException, match="make airflow"):
        task("gold_aggregate", url=f"http://127.0.0.1:{free_port()}").execute({})
    status, logged = run(job_server, "train_models", *nothing_to_do)
    assert status == EXIT_SKIPPED and any("JobSkipped: no gold features yet" in line for line in logged), (
        logged
    )


def test_a_job_is_a_lineage_child_of_the_task_its_request_names(job_server, tmp_path, monkeypatch):
    events = tmp_path / "lineage.jsonl"
    monkeypatch.setenv(
        "OPENLINEAGE__TRANSPORT", json.dumps({"type": "file", "log_file_path": str(events), "append": True})
    )
    parent_run, root_run = "01938f2e-0000-7000-8000-00000000000a", "01938f2e-0000-7000-8000-00000000000b"
    parents = {
        "parent": f"ns/fhir_ml_training.train_models/{parent_run}",
        "root": f"ns/fhir_ml_training/{root_run}",
    }
    lakehouse = str(tmp_path / "empty")
    nothing_to_do = (
        "--lakehouse",
        lakehouse,
        "--as-of",
        RUN_DATE.isoformat(),
        "--tracking-uri",
        f"sqlite:///{tmp_path}/mlflow.db",
    )
    status, logged = run(job_server, "train_models", *nothing_to_do, lineage=parents)
    assert status == EXIT_SKIPPED, logged
    [_, complete] = [json.loads(line) for line in events.read_text().splitlines()]
    assert complete["eventType"] == "COMPLETE"  # nothing to do is no failure
    assert complete["job"]["name"] == "fhir_spark_jobs.train_models"
    parent = complete["run"]["facets"]["parent"]
    assert (parent["job"]["name"], parent["run"]["runId"]) == ("fhir_ml_training.train_models", parent_run)
    assert (parent["root"]["job"]["name"], parent["root"]["run"]["runId"]) == ("fhir_ml_training", root_run)
    assert [d["name"] for d in complete["inputs"]] == []  # it stopped before reading gold


def test_a_job_session_has_its_own_settings_and_hadoop_keys(spark):
    session = job_session(
        spark, {"spark.sql.shuffle.partitions": "3", "spark.hadoop.parquet.block.size": "1024"}
    )
    assert session.conf.get("spark.sql.shuffle.partitions") == "3"
    assert session.conf.get("parquet.block.size") == "1024"
    assert spark.conf.get("spark.sql.shuffle.partitions") != "3"
    assert session.sparkContext is spark.sparkContext


def test_a_client_that_closed_its_end_is_seen_gone():
    server_end, client_end = socket.socketpair()
    try:
        assert not client_gone(server_end)
        client_end.close()
        assert client_gone(server_end)
    finally:
        server_end.close()
