"""The feature blocks of a spine (spine.FeatureBlock) besides measurements, and
spine_features, which lays every block side by side with its declared defaults."""

from __future__ import annotations

from functools import reduce

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

from spark_jobs import codesets
from spark_jobs.gold.measurement_features import MEASUREMENTS
from spark_jobs.gold.spine import FeatureBlock, in_window, known_at_cutoff, on_spine, value_set
from spark_jobs.phi import AGE_CAP, age_bucket

INPATIENT_CLASSES = ("IMP", "ACUTE", "NONAC")
EMERGENCY_CLASSES = ("EMER",)
# Condition groups that count as comorbidities (prediabetes and obesity are risk factors).
COMORBIDITIES = (
    "diabetes",
    "hypertension",
    "hyperlipidemia",
    "chronic_kidney_disease",
    "heart_failure",
    "copd",
    "coronary_artery_disease",
    "stroke",
    "asthma",
)


def demographic_features(spine: DataFrame, patients: DataFrame) -> DataFrame:
    """Age at the cutoff: silver's age at age_as_of, moved to the cutoff date."""
    joined = spine.join(
        patients.select("patient_id_hashed", "gender", "age_years", "age_as_of"),
        "patient_id_hashed",
        "left",
    )
    moved = F.col("age_years") + F.floor(F.months_between(F.col("cutoff_date"), F.col("age_as_of")) / 12)
    age = F.when(F.col("age_years") >= AGE_CAP, F.lit(AGE_CAP)).otherwise(F.least(moved, F.lit(AGE_CAP)))
    return joined.select(
        "spine_id",
        age.cast("int").alias("age_years"),
        age_bucket(age).alias("age_bucket"),
        "gender",
        (F.col("gender") == "male").cast("int").alias("is_male"),
    )


def encounter_features(spine: DataFrame, encounters: DataFrame) -> DataFrame:
    rows = on_spine(spine, encounters.filter(F.col("period_start").isNotNull())).filter(
        known_at_cutoff(F.col("period_start"), F.col("encounter_date"))
    )
    date, cutoff, klass = F.col("encounter_date"), F.col("cutoff_date"), F.col("encounter_class")
    inpatient = klass.isin(*INPATIENT_CLASSES)
    ended = F.coalesce(known_at_cutoff(F.col("period_end"), F.col("encounter_end_date")), F.lit(False))
    return (
        rows.groupBy("spine_id", "cutoff_date")
        .agg(
            F.count(F.when(in_window(date, cutoff, 180), True)).alias("encounter_count_6m"),
            F.count(F.when(in_window(date, cutoff, 365), True)).alias("encounter_count_365d"),
            F.count(F.when(in_window(date, cutoff, 365) & inpatient, True)).alias("inpatient_count_365d"),
            F.count(F.when(in_window(date, cutoff, 365) & klass.isin(*EMERGENCY_CLASSES), True)).alias(
                "emergency_count_365d"
            ),
            F.sum(
                F.when(in_window(date, cutoff, 365) & inpatient & ended, F.col("length_of_stay_days"))
            ).alias("inpatient_days_365d"),
            F.avg(F.when(in_window(date, cutoff, 365) & ended, F.col("duration_hours"))).alias(
                "avg_encounter_duration_hours"
            ),
            F.datediff(cutoff, F.max(date)).alias("days_since_last_visit"),
            F.datediff(cutoff, F.max(F.when(inpatient & ended, F.col("encounter_end_date")))).alias(
                "days_since_last_discharge"
            ),
        )
        .drop("cutoff_date")
    )


def encounter_defaults() -> dict[str, bool | int]:
    """No encounter: none counted, no inpatient day (the mean duration and the days
    since a visit or discharge stay null)."""
    return {
        "encounter_count_6m": 0,
        "encounter_count_365d": 0,
        "inpatient_count_365d": 0,
        "emergency_count_365d": 0,
        "inpatient_days_365d": 0,
    }


def condition_features(spine: DataFrame, conditions: DataFrame) -> DataFrame:
    """has_<group>_dx and comorbidity_count: conditions with onset on or before the
    cutoff and no abatement by then (clinicalStatus is current state, so unused)."""
    groups = codesets.condition_groups()
    # A timestamp is null exactly when its date is (silver.fhir_date): each coalesce takes one source.
    onset = known_at_cutoff(
        F.coalesce(F.col("onset_ts"), F.col("recorded_ts")),
        F.coalesce(F.col("onset_date"), F.col("recorded_date")),
    )
    abated = F.coalesce(known_at_cutoff(F.col("abatement_ts"), F.col("abatement_date")), F.lit(False))
    coded = conditions.join(F.broadcast(value_set(conditions.sparkSession, groups, "code", "group")), "code")
    rows = on_spine(spine, coded).filter(onset & ~abated)
    flags = [F.max(F.col("group") == group).alias(f"has_{group}_dx") for group in groups]
    counted = F.array_distinct(F.collect_list(F.when(F.col("group").isin(*COMORBIDITIES), F.col("group"))))
    return rows.groupBy("spine_id").agg(*flags, F.size(counted).alias("comorbidity_count"))


def condition_defaults() -> dict[str, bool | int]:
    """No coded condition: no diagnosis of any group, no comorbidity."""
    return {**{f"has_{group}_dx": False for group in codesets.condition_groups()}, "comorbidity_count": 0}


def _active_at_cutoff() -> Column:
    """A medication period covers the cutoff (an open period counts while the record is active)."""
    still_open = F.col("effective_end").isNull() & F.col("status").isin("active", "on-hold", "intended")
    return known_at_cutoff(F.col("effective_start"), F.col("start_date")) & (
        (F.col("end_date") >= F.col("cutoff_date")) | still_open
    )


def medication_features(spine: DataFrame, medications: DataFrame) -> DataFrame:
    classes = codesets.medication_classes()
    class_of = value_set(medications.sparkSession, classes, "rxnorm_code", "med_class")
    rows = on_spine(spine, medications.join(F.broadcast(class_of), "rxnorm_code", "left")).filter(
        known_at_cutoff(F.col("effective_start"), F.col("start_date"))
    )
    active = _active_at_cutoff()
    medication = F.coalesce(F.col("rxnorm_code"), F.col("code"), F.col("medication_reference"))
    return rows.groupBy("spine_id").agg(
        F.count_distinct(F.when(active, medication)).alias("active_medication_count"),
        F.count_distinct(F.when(in_window(F.col("start_date"), F.col("cutoff_date"), 365), medication)).alias(
            "distinct_medications_365d"
        ),
        *[
            F.coalesce(F.max(active & (F.col("med_class") == klass)), F.lit(False)).alias(f"on_{klass}")
            for klass in classes
        ],
    )


def medication_defaults() -> dict[str, bool | int]:
    """No medication: none active or started in the year, on no chronic class."""
    return {
        "active_medication_count": 0,
        "distinct_medications_365d": 0,
        **{f"on_{klass}": False for klass in codesets.medication_classes()},
    }


SPINE_BLOCKS = (
    FeatureBlock("demographics", "patients", demographic_features, dict),
    MEASUREMENTS,
    FeatureBlock("encounters", "encounters", encounter_features, encounter_defaults),
    FeatureBlock("conditions", "conditions", condition_features, condition_defaults),
    FeatureBlock("medications", "medications", medication_features, medication_defaults),
)


def checked_defaults(block: FeatureBlock, frame: DataFrame) -> dict[str, bool | int]:
    """The block's declared defaults, each naming one of its columns: a flag false, a number 0."""
    types = {f.name: f.dataType.simpleString() for f in frame.schema.fields}
    declared = block.when_absent()
    for column, value in declared.items():
        if column not in types:
            raise ValueError(f"feature block {block.name} declares a default for {column}, which it lacks")
        if isinstance(value, bool) != (types[column] == "boolean"):
            raise ValueError(
                f"feature block {block.name}: default {value!r} does not fit {column} ({types[column]})"
            )
    return declared


def spine_features(
    spine: DataFrame, blocks: tuple[FeatureBlock, ...] = SPINE_BLOCKS, **inputs: DataFrame
) -> DataFrame:
    """The spine with every block's features (a left join per block) and each block's
    declared defaults where it had no row; `inputs` are the blocks' sources by name."""
    missing = sorted({block.source for block in blocks} - set(inputs))
    if missing:
        raise ValueError(f"spine features need the inputs {missing}")
    frames = [block.features(spine, inputs[block.source]) for block in blocks]
    defaults = {}
    for block, frame in zip(blocks, frames, strict=True):
        defaults.update(checked_defaults(block, frame))
    joined = reduce(lambda left, right: left.join(right, "spine_id", "left"), frames, spine)
    return joined.fillna(defaults)
