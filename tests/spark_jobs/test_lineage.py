"""OpenLineage from the jobs (spark_jobs/lineage.py): each job run is one OpenLineage run,
a child of the task that started it, whose inputs and outputs are the storage locations
it read and wrote through the lakehouse helpers."""

from __future__ import annotations

import json
import logging

import pytest

from fhir_contract import LINEAGE_PARENT_ENV, LINEAGE_ROOT_PARENT_ENV
from spark_jobs import lineage
from spark_jobs.lakehouse import (
    JobSkipped,
    PermanentJobError,
    job_exit_status,
    merge_by_key,
    overwrite_slice,
    read_table,
)
from tests.conftest import free_port

PARENT_RUN, ROOT_RUN = "01938f2e-0000-7000-8000-000000000001", "01938f2e-0000-7000-8000-000000000002"
PARENT = f"fhir_lakehouse/fhir_batch_pipeline.silver_normalize/{PARENT_RUN}"
ROOT = f"fhir_lakehouse/fhir_batch_pipeline/{ROOT_RUN}"


def emitted(path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def datasets(event: dict, side: str) -> list[tuple[str, str]]:
    return [(d["namespace"], d["name"]) for d in event[side]]


@pytest.fixture
def lineage_file(tmp_path, monkeypatch):
    path = tmp_path / "lineage.jsonl"
    transport = {"type": "file", "log_file_path": str(path), "append": True}
    monkeypatch.setenv("OPENLINEAGE__TRANSPORT", json.dumps(transport))
    return path


def test_a_job_run_names_the_tables_it_read_and_wrote_under_the_task_that_started_it(
    spark, tmp_path, lineage_file, monkeypatch
):
    monkeypatch.setenv(LINEAGE_PARENT_ENV, PARENT)
    monkeypatch.setenv(LINEAGE_ROOT_PARENT_ENV, ROOT)
    source, merged, sliced = (str(tmp_path / p) for p in ("bronze/raw", "silver/rows", "gold/rows"))
    spark.createDataFrame([(1, "a")], "id int, v string").write.format("delta").save(source)

    def main():
        rows = read_table(spark, source)
        merge_by_key(spark, rows, merged, ["id"])  # creates the table
        merge_by_key(spark, rows, merged, ["id"])  # a MERGE: its target is not an input
        overwrite_slice(rows, sliced, "id = 1")

    assert job_exit_status(main) == 0
    start, complete = emitted(lineage_file)
    assert (start["eventType"], complete["eventType"]) == ("START", "COMPLETE")
    assert start["run"]["runId"] == complete["run"]["runId"]
    assert complete["job"]["namespace"] == "fhir_lakehouse"  # the parent's
    assert complete["job"]["name"] == "fhir_spark_jobs.test_lineage"  # the job's module
    assert datasets(complete, "inputs") == [("file", source)]
    assert datasets(complete, "outputs") == [("file", merged), ("file", sliced)]
    parent = complete["run"]["facets"]["parent"]
    assert parent["run"]["runId"] == PARENT_RUN
    assert (parent["job"]["namespace"], parent["job"]["name"]) == (
        "fhir_lakehouse",
        "fhir_batch_pipeline.silver_normalize",
    )
    assert parent["root"]["run"]["runId"] == ROOT_RUN
    assert parent["root"]["job"]["name"] == "fhir_batch_pipeline"


def test_how_a_job_ended_is_how_its_run_ended(lineage_file):
    def ends_with(error: Exception):
        def main():
            lineage.read("/landing/daily_extract/2026-11-20")
            raise error

        return main

    assert job_exit_status(ends_with(JobSkipped("nothing new")))
    assert job_exit_status(ends_with(PermanentJobError("bad thresholds file")))
    with pytest.raises(RuntimeError):
        job_exit_status(ends_with(RuntimeError("executor lost")))
    ends = [e for e in emitted(lineage_file) if e["eventType"] != "START"]
    assert [e["eventType"] for e in ends] == ["COMPLETE", "FAIL", "FAIL"]
    assert [e["run"]["facets"]["errorMessage"]["message"] for e in ends[1:]] == [
        "PermanentJobError: bad thresholds file",
        "RuntimeError: executor lost",
    ]
    assert all(datasets(e, "inputs") == [("file", "/landing/daily_extract/2026-11-20")] for e in ends)
    assert "parent" not in ends[0]["run"]["facets"]  # started by hand, not by a task


def test_a_model_version_is_an_output_with_the_mlflow_run_that_logged_it(lineage_file):
    def main():
        lineage.read("abfss://lakehouse@acct.dfs.core.windows.net/gold/chronic_disease_features")
        lineage.wrote_model("fhir_diabetes_risk", "3", "a1b2c3")

    assert job_exit_status(main) == 0
    complete = emitted(lineage_file)[-1]
    assert datasets(complete, "inputs") == [
        ("abfss://lakehouse@acct.dfs.core.windows.net", "gold/chronic_disease_features")
    ]
    [model] = complete["outputs"]
    assert (model["namespace"], model["name"]) == ("mlflow", "fhir_diabetes_risk/3")
    facet = model["facets"]["mlflowModelVersion"]
    assert (facet["name"], facet["version"], facet["runId"]) == ("fhir_diabetes_risk", "3", "a1b2c3")


@pytest.mark.parametrize(
    ("uri", "expected"),
    [
        (
            "/data/lakehouse/silver/patients_normalized/",
            ("file", "/data/lakehouse/silver/patients_normalized"),
        ),
        ("file:///data/landing/daily_extract/2026-11-20", ("file", "/data/landing/daily_extract/2026-11-20")),
        (
            "abfss://landing@acct.dfs.core.windows.net/daily_extract/2026-11-20",
            ("abfss://landing@acct.dfs.core.windows.net", "daily_extract/2026-11-20"),
        ),
        (
            "s3a://bucket/lakehouse/gold/lab_result_trends",
            ("s3a://bucket", "lakehouse/gold/lab_result_trends"),
        ),
    ],
)
def test_datasets_are_named_by_their_storage_location(uri, expected):
    assert lineage.dataset(uri) == expected


def test_without_a_transport_nothing_is_recorded_and_a_dead_one_fails_no_job(monkeypatch, caplog):
    def main():
        lineage.read("/landing")
        recorded.append(lineage._current.get())

    recorded: list = []
    assert job_exit_status(main) == 0
    assert recorded == [None]  # lineage off: no run to record into
    dead = {"type": "http", "url": f"http://127.0.0.1:{free_port()}", "retry": {"total": 0}}
    monkeypatch.setenv("OPENLINEAGE__TRANSPORT", json.dumps(dead))
    monkeypatch.setenv(LINEAGE_PARENT_ENV, "not-a-parent")
    with caplog.at_level(logging.WARNING, logger="fhir_lakehouse.lineage"):
        assert job_exit_status(main) == 0
    assert "has no parent" in caplog.text
    assert "COMPLETE event of test_lineage not sent" in caplog.text
