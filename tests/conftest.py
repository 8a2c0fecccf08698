"""Shared fixtures: one local SparkSession (Delta enabled) for the whole run,
and the public sample data copied into tests/fixtures/fhir-samples/ (see its SOURCES.md)."""

from __future__ import annotations

from pathlib import Path

import pytest

from spark_jobs.session import build_spark_session

SAMPLES = Path(__file__).parent / "fixtures" / "fhir-samples"


@pytest.fixture(scope="session")
def spark(tmp_path_factory):
    warehouse = tmp_path_factory.mktemp("spark-warehouse")
    session = build_spark_session(
        "fhir-lakehouse-tests",
        extra_conf={
            "spark.ui.enabled": "false",
            "spark.sql.warehouse.dir": str(warehouse),
        },
    )
    yield session
    session.stop()


@pytest.fixture(scope="session")
def hl7_examples() -> Path:
    """Official HL7 FHIR R4 examples, one resource or Bundle per file."""
    return SAMPLES / "hl7-r4-examples"


@pytest.fixture(scope="session")
def synthea_ndjson() -> Path:
    """A 9-patient Synthea bulk export (NDJSON per resource type)."""
    return SAMPLES / "synthea-ndjson-pathling"
