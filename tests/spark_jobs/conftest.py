"""Fixtures for the Spark job tests: the sample data landed in bronze once per run."""

from __future__ import annotations

import pytest

from tests.lakehouse_helpers import RUN_DATE, ingest, landing_with, normalize


@pytest.fixture(scope="session")
def samples_lakehouse(spark, hl7_examples, synthea_ndjson, tmp_path_factory):
    landing = landing_with(tmp_path_factory.mktemp("landing"), RUN_DATE, hl7_examples, synthea_ndjson)
    lakehouse = tmp_path_factory.mktemp("lakehouse")
    counts = ingest(spark, landing, lakehouse)
    return landing, lakehouse, counts


@pytest.fixture(scope="session")
def samples_silver(spark, samples_lakehouse):
    landing, lakehouse, _ = samples_lakehouse
    summary = normalize(spark, lakehouse)
    return landing, lakehouse, summary


@pytest.fixture(scope="session")
def generated_lakehouse(spark, tmp_path_factory):
    """Generated patients (FHIR_TEST_PATIENTS, default 1500) through bronze, silver and gold."""
    import os

    from spark_jobs.gold import job as gold_job
    from tools.fhir_generator import generate

    patients = int(os.environ.get("FHIR_TEST_PATIENTS", "1500"))
    root = tmp_path_factory.mktemp("generated")
    generate(
        patients=patients, seed=20261120, out=str(root / "landing"), date=RUN_DATE.isoformat(), progress=False
    )
    ingest(spark, root / "landing", root / "lakehouse")
    normalize(spark, root / "lakehouse")
    gold_job.run(spark, lakehouse=str(root / "lakehouse"), as_of=RUN_DATE)
    return root / "lakehouse", RUN_DATE
