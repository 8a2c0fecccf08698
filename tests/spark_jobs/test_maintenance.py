"""Weekly maintenance on a real lakehouse: OPTIMIZE clusters the liquid-clustered
silver tables, Z-orders bronze, compacts the rest, and no row is lost."""

from __future__ import annotations

import json
import shutil

from delta.tables import DeltaTable

from fhir_contract import table_path
from spark_jobs import maintenance
from spark_jobs.lakehouse import read_table
from spark_jobs.silver.tables import SILVER_TABLES
from tests.lakehouse_helpers import RUN_DATE, ingest, normalize


def test_silver_date_tables_are_clustered_not_partitioned(spark, samples_silver):
    _, lakehouse, _ = samples_silver
    for table in SILVER_TABLES:
        detail = DeltaTable.forPath(spark, table_path(str(lakehouse), "silver", table.name)).detail().first()
        assert detail.partitionColumns == []
        assert detail.clusteringColumns == list(table.cluster_by)


def test_maintenance_optimizes_every_table_and_keeps_every_row(spark, synthea_ndjson, tmp_path):
    # A lakehouse of its own (maintenance rewrites files), of the clinical types only:
    # bronze has a partition per resource type, ~150 with the HL7 examples.
    landing = tmp_path / "landing" / "daily_extract" / RUN_DATE.isoformat()
    landing.mkdir(parents=True)
    for resource_type in ("Patient", "Encounter", "Observation", "MedicationRequest", "Condition"):
        shutil.copy(synthea_ndjson / f"{resource_type}.ndjson", landing)
    lakehouse = tmp_path / "lakehouse"
    ingest(spark, tmp_path / "landing", lakehouse)
    normalize(spark, lakehouse)
    tables = maintenance.lakehouse_tables(spark, str(lakehouse))
    rows_before = {t: read_table(spark, table_path(str(lakehouse), *t)).count() for t in tables}

    report = maintenance.run(spark, lakehouse=str(lakehouse))

    assert set(report) == {f"{layer}/{name}" for layer, name in tables}
    assert ("silver", "observations_normalized") in tables and ("bronze", "fhir_raw") in tables
    for layer, name in tables:
        path = table_path(str(lakehouse), layer, name)
        assert read_table(spark, path).count() == rows_before[(layer, name)], f"{layer}/{name}"
        assert report[f"{layer}/{name}"]["files_after"] <= report[f"{layer}/{name}"]["files_before"]

    def optimize_parameters(layer: str, name: str) -> dict:
        history = DeltaTable.forPath(spark, table_path(str(lakehouse), layer, name)).history()
        return history.filter("operation = 'OPTIMIZE'").first().operationParameters

    observations = optimize_parameters("silver", "observations_normalized")
    assert json.loads(observations["clusterBy"]) == ["observation_date", "patient_id_hashed"]
    assert json.loads(optimize_parameters("bronze", "fhir_raw")["zOrderBy"]) == ["resource_id"]
