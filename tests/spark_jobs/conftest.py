"""Fixtures for the Spark job tests: the sample data landed in bronze once per run."""

from __future__ import annotations

import pytest

from tests.lakehouse_helpers import RUN_DATE, ingest, landing_with


@pytest.fixture(scope="session")
def samples_lakehouse(spark, hl7_examples, synthea_ndjson, tmp_path_factory):
    landing = landing_with(
        tmp_path_factory.mktemp("landing"), RUN_DATE, hl7_examples, synthea_ndjson
    )
    lakehouse = tmp_path_factory.mktemp("lakehouse")
    counts = ingest(spark, landing, lakehouse)
    return landing, lakehouse, counts
