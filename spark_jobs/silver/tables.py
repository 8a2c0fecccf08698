"""The silver tables: the core tables silver defines and one per ViewDefinition,
each with its keys, clustering and the bronze table of each resource type."""

from __future__ import annotations

from dataclasses import dataclass

from pyspark.sql import Column, SparkSession
from pyspark.sql import functions as F

from spark_jobs.silver.clinical import HashFn
from spark_jobs.sof.catalog import RESOURCE_KEY, ROW_ID, SilverView, load_views


@dataclass(frozen=True)
class SilverTable:
    name: str
    resource_types: tuple[str, ...]
    key_column: str  # one per resource; holds "<id>" or, for medications, "<Type>/<id>"
    row_key_column: str  # one per row
    # Liquid clustering, not partitions: a partition per clinical date is a tiny file per date.
    cluster_by: tuple[str, ...]
    view: SilverView | None = None  # a ViewDefinition's table (include/views/ or the extra folder)

    def resource_key(self, resource_type: str, resource_id: Column, hash_id: HashFn) -> Column:
        """The value `key_column` holds for a resource (never a raw patient id)."""
        if self.key_column == "patient_id_hashed" or (self.view is not None and resource_type == "Patient"):
            return hash_id(resource_id)
        if self.key_column == "medication_record_id":
            return F.concat(F.lit(f"{resource_type}/"), resource_id)
        return resource_id


SILVER_TABLES = (
    SilverTable("patients_normalized", ("Patient",), "patient_id_hashed", "patient_id_hashed", ()),
    SilverTable(
        "encounters_normalized",
        ("Encounter",),
        "encounter_id",
        "encounter_id",
        ("encounter_date", "patient_id_hashed"),
    ),
    SilverTable(
        "observations_normalized",
        ("Observation",),
        "observation_id",
        "measurement_id",
        ("observation_date", "patient_id_hashed"),
    ),
    SilverTable(
        "medications_normalized",
        ("MedicationStatement", "MedicationRequest"),
        "medication_record_id",
        "medication_record_id",
        ("start_date", "patient_id_hashed"),
    ),
    SilverTable("conditions_normalized", ("Condition",), "condition_id", "condition_id", ()),
)

BRONZE_TABLE = {
    "Patient": "patient_raw",
    "Encounter": "encounter_raw",
    "Observation": "observation_raw",
    "MedicationStatement": "medicationstatement_raw",
    "MedicationRequest": "medicationrequest_raw",
    "Condition": "condition_raw",
}

# Silver's own view of each resource type (include/silver_views/).
SOURCE_VIEWS = {
    "Observation": "observations",
    "Patient": "patients",
    "Encounter": "encounters",
    "Condition": "conditions",
    "MedicationStatement": "medication_statements",
    "MedicationRequest": "medication_requests",
}


def view_tables(spark: SparkSession, views_folder: str | None) -> tuple[SilverTable, ...]:
    """A silver table per ViewDefinition, all checked before any data is read."""
    reserved = {t.name for t in SILVER_TABLES} | {"resource_tombstones"}
    return tuple(
        SilverTable(view.name, (view.compiled.resource,), RESOURCE_KEY, ROW_ID, (), view=view)
        for view in load_views(spark, views_folder, reserved)
    )
