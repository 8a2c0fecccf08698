"""The silver rows gold reads: usable measurements, and the columns of the other
silver tables that gold (and train_models) use."""

from __future__ import annotations

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from fhir_contract import table_path
from spark_jobs.lakehouse import read_table

# The silver columns gold (and train_models) reads, besides patient_id_hashed. silver_inputs
# caches only these: caching whole rows runs gold out of its driver heap at scale.
ENCOUNTER_COLUMNS = [
    "encounter_id",
    "status",
    "encounter_class",
    "period_start",
    "period_end",
    "encounter_date",
    "encounter_end_date",
    "length_of_stay_days",
    "duration_hours",
]
CONDITION_COLUMNS = [
    "code",
    "onset_ts",
    "onset_date",
    "recorded_ts",
    "recorded_date",
    "abatement_ts",
    "abatement_date",
]
MEDICATION_COLUMNS = [
    "source_resource_type",
    "status",
    "rxnorm_code",
    "code",
    "medication_reference",
    "effective_start",
    "effective_end",
    "start_date",
    "end_date",
    "duration_days",
    "expected_supply_days",
    "number_of_repeats_allowed",
]


def usable_measurements(observations: DataFrame) -> DataFrame:
    """Silver measurements gold may use: not entered in error or cancelled, with a value in
    the measure's canonical unit (silver `is_unit_normalized`), dated, of a known patient."""
    return observations.filter(
        ~F.coalesce(F.col("is_entered_in_error"), F.lit(False))
        & ~F.coalesce(F.col("status").isin("cancelled", "entered-in-error"), F.lit(False))
        & F.coalesce(F.col("is_unit_normalized"), F.lit(False))
        & F.col("measure").isNotNull()
        & F.col("value_numeric").isNotNull()
        & F.col("observation_ts").isNotNull()
        & F.col("patient_id_hashed").isNotNull()
    ).select(
        "patient_id_hashed",
        "measure",
        "observation_date",
        "observation_ts",
        "value_numeric",
        F.coalesce(F.col("is_abnormal"), F.lit(False)).alias("is_abnormal"),
    )


def usable(df: DataFrame, columns: list[str]) -> DataFrame:
    """Rows not entered in error, of a known patient: patient_id_hashed and `columns`."""
    return df.filter(
        ~F.coalesce(F.col("is_entered_in_error"), F.lit(False)) & F.col("patient_id_hashed").isNotNull()
    ).select("patient_id_hashed", *columns)


def silver_inputs(spark: SparkSession, lakehouse: str) -> dict[str, DataFrame]:
    """The silver rows gold reads, cached: every gold table reads them again, and the
    cache spares each of them reading silver anew."""

    def silver(table: str) -> DataFrame:
        return read_table(spark, table_path(lakehouse, "silver", table))

    return {
        "patients": silver("patients_normalized")
        .select("patient_id_hashed", "gender", "age_years", "age_as_of")
        .cache(),
        "measurements": usable_measurements(silver("observations_normalized")).cache(),
        "encounters": usable(silver("encounters_normalized"), ENCOUNTER_COLUMNS).cache(),
        "conditions": usable(silver("conditions_normalized"), CONDITION_COLUMNS).cache(),
        "medications": usable(silver("medications_normalized"), MEDICATION_COLUMNS).cache(),
    }


def release(inputs: dict[str, DataFrame]) -> None:
    for frame in inputs.values():
        frame.unpersist()
