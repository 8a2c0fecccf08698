"""Gold: clinical trends and ML features from silver, as of one date.

    python -m spark_jobs.gold_aggregate --lakehouse <root-uri> --as-of D [--trend-days N]

Every window is by date, never by row count: "_30d" means dated in
(cutoff - 30 days, cutoff] (SPEC §5), likewise _7d, _90d, _180d (also "6m"), _365d.
Only usable measurements count: not entered-in-error or cancelled, value in the
measure's canonical unit (silver `is_unit_normalized`).

Point in time: every feature of a row is computed from data dated on or before
that row's cutoff (the as-of date, or the discharge for readmission rows), and
never from current-state fields that may have been set later (a condition's
clinicalStatus, a medication's status): periods and dates decide what was active.
Dates are the local dates silver records (SPEC §5): an as-of cutoff includes what
is dated on or before the as-of date; only a discharge cutoff compares instants.

Tables (Delta, under <lakehouse>/gold/):
- patient_vital_trends: per patient and day, heart rate avg/min/max, BP, temperature,
  SpO2, respiratory rate and the day's flags (hypertension: mean BP >= 140/90,
  tachycardia: mean HR > 100, hypoxia: mean SpO2 < 90).
- lab_result_trends: per patient, lab and day: the day's mean, 7/30/90-day means
  ending that day (over measurements), pct_change_7d_vs_30d, trend_direction
  (INCREASING when the 7-day mean is more than TREND_THRESHOLD_PCT = 5% above the
  30-day mean, DECREASING when more than 5% below, else STABLE) and
  days_since_abnormal (days since the latest abnormal result of that lab, that day included).
  Both trend tables: each run replaces the days in (D - N, D], N = --trend-days.
- chronic_disease_features: one row per patient as of D: demographics, vital and
  lab aggregates, slopes, last values, encounters, comorbidities, medications, and
  the SPEC §5 risk flags.
- medication_adherence_features: one row per patient with medications: counts,
  durations and adherence_score = PDC x 100 over the last 180 days.
- readmission_features: one row per inpatient stay discharged on or before D:
  features known at discharge and readmission_30d (another inpatient stay of the
  same patient starting within 30 days after the discharge; null while those
  30 days are not yet over and no readmission is seen).
Snapshot tables carry as_of_date and each run replaces its own as-of slice.
"""

from __future__ import annotations

import argparse
import datetime as dt
import logging
from functools import reduce

from pyspark.sql import Column, DataFrame, SparkSession, Window
from pyspark.sql import functions as F

from spark_jobs import codesets
from spark_jobs.lakehouse import (
    JobSkipped,
    configure_logging,
    last_commit_metrics,
    overwrite_slice,
    read_table,
    run_job,
    table_exists,
    table_path,
)
from spark_jobs.phi import AGE_CAP, age_bucket
from spark_jobs.session import build_spark_session

log = logging.getLogger("fhir_lakehouse.gold")

TREND_THRESHOLD_PCT = 5.0
VITALS = (
    "heart_rate",
    "bp_systolic",
    "bp_diastolic",
    "temperature",
    "oxygen_saturation",
    "respiratory_rate",
)
LABS = ("glucose", "hba1c", "creatinine", "total_cholesterol", "ldl", "hdl", "hemoglobin")
FEATURE_LABS = (*LABS, "triglycerides")
INPATIENT_CLASSES = ("IMP", "ACUTE", "NONAC")
EMERGENCY_CLASSES = ("EMER",)
ADHERENCE_DAYS = 180
READMISSION_DAYS = 30
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

# Feature names follow the seeds (avg_total_chol_90d).
SHORT_NAME = {"total_cholesterol": "total_chol", "oxygen_saturation": "spo2"}


def short(measure: str) -> str:
    return SHORT_NAME.get(measure, measure)


def in_window(date_column: Column, cutoff: Column, days: int) -> Column:
    """date in (cutoff - days, cutoff]."""
    return (date_column > F.date_sub(cutoff, days)) & (date_column <= cutoff)


def day_number(date_column: Column) -> Column:
    return F.datediff(date_column, F.lit(dt.date(1970, 1, 1)))


def known_at_cutoff(instant: Column, date: Column) -> Column:
    """An event on or before its spine row's cutoff: by instant when the cutoff is one (a
    discharge, `cutoff_ts`), else by the date recorded (an as-of date, `cutoff_ts` null)."""
    return F.coalesce(instant <= F.col("cutoff_ts"), date <= F.col("cutoff_date"))


# --- Inputs -----------------------------------------------


def usable_measurements(observations: DataFrame) -> DataFrame:
    """Silver measurements gold may use (see module docstring)."""
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


def usable(df: DataFrame, columns: list[str]) -> DataFrame:
    """Rows not entered in error, of a known patient: patient_id_hashed and `columns`."""
    return df.filter(
        ~F.coalesce(F.col("is_entered_in_error"), F.lit(False)) & F.col("patient_id_hashed").isNotNull()
    ).select("patient_id_hashed", *columns)


# --- Time-series tables ---------------------------------------------------------------------------


def daily_measures(measurements: DataFrame) -> DataFrame:
    """Per patient, measure and day: sum, count, min, max and whether any result was abnormal."""
    return measurements.groupBy("patient_id_hashed", "measure", "observation_date").agg(
        F.sum("value_numeric").alias("day_sum"),
        F.count("value_numeric").alias("day_count"),
        F.min("value_numeric").alias("day_min"),
        F.max("value_numeric").alias("day_max"),
        F.max(F.col("is_abnormal").cast("int")).alias("day_abnormal"),
    )


def vital_trends(daily: DataFrame, first_day: dt.date, as_of: dt.date) -> DataFrame:
    days = daily.filter(F.col("measure").isin(*VITALS) & F.col("observation_date").between(first_day, as_of))
    mean = F.col("day_sum") / F.col("day_count")
    wide = (
        days.groupBy("patient_id_hashed", "observation_date")
        .pivot("measure", list(VITALS))
        .agg(
            F.first(mean).alias("avg"),
            F.first("day_min").alias("min"),
            F.first("day_max").alias("max"),
        )
    )
    rules = codesets.clinical_rules()
    return wide.select(
        "patient_id_hashed",
        "observation_date",
        "heart_rate_avg",
        "heart_rate_min",
        "heart_rate_max",
        "bp_systolic_avg",
        "bp_diastolic_avg",
        "temperature_avg",
        "oxygen_saturation_avg",
        "respiratory_rate_avg",
        *[
            rules[flag].met(lambda measure: F.col(f"{measure}_avg")).alias(f"{flag}_flag")
            for flag in ("hypertension", "tachycardia", "hypoxia")
        ],
        F.lit(as_of).alias("as_of_date"),
    )


def lab_trends(daily: DataFrame, first_day: dt.date, as_of: dt.date) -> DataFrame:
    """Lab values per day with date-ranged rolling means over measurements (not days)."""
    labs = daily.filter(F.col("measure").isin(*LABS) & (F.col("observation_date") <= as_of))
    by_lab = Window.partitionBy("patient_id_hashed", "measure").orderBy(day_number(F.col("observation_date")))

    def rolling_mean(days: int) -> Column:
        frame = by_lab.rangeBetween(-(days - 1), 0)
        return F.sum("day_sum").over(frame) / F.sum("day_count").over(frame)

    last_abnormal = F.max(F.when(F.col("day_abnormal") == 1, F.col("observation_date"))).over(
        by_lab.rangeBetween(Window.unboundedPreceding, 0)
    )
    loinc = F.create_map(*[F.lit(x) for lab in LABS for x in (lab, codesets.loinc_codes(lab)[0])])
    trends = labs.select(
        "patient_id_hashed",
        "observation_date",
        F.col("measure").alias("lab"),
        loinc[F.col("measure")].alias("loinc_code"),
        (F.col("day_sum") / F.col("day_count")).alias("value_numeric"),
        rolling_mean(7).alias("value_7d_avg"),
        rolling_mean(30).alias("value_30d_avg"),
        rolling_mean(90).alias("value_90d_avg"),
        F.datediff(F.col("observation_date"), last_abnormal).alias("days_since_abnormal"),
    ).filter(F.col("observation_date") >= first_day)
    change = (F.col("value_7d_avg") - F.col("value_30d_avg")) / F.col("value_30d_avg") * 100
    return (
        trends.withColumn("pct_change_7d_vs_30d", F.when(F.col("value_30d_avg") != 0, change))
        .withColumn(
            "trend_direction",
            F.when(F.col("pct_change_7d_vs_30d") > TREND_THRESHOLD_PCT, "INCREASING")
            .when(F.col("pct_change_7d_vs_30d") < -TREND_THRESHOLD_PCT, "DECREASING")
            .otherwise("STABLE"),
        )
        .withColumn("as_of_date", F.lit(as_of))
    )


# --- Feature blocks over a spine -----------------------------------------------
# A spine has one row per feature row: spine_id, patient_id_hashed, cutoff_date and
# cutoff_ts (inclusive; null for an as-of date, see known_at_cutoff). Each block joins a
# patient's data to its spine rows, keeps what is dated on or before the cutoff, and
# aggregates per spine_id.


def _value_set(spark: SparkSession, sets: dict[str, list[str]], code: str, name: str) -> DataFrame:
    """(code, set name) rows of a code-set file; a code may belong to several sets."""
    return spark.createDataFrame(
        [(c, set_name) for set_name, codes in sets.items() for c in codes],
        f"{code} string, {name} string",
    )


def _on_spine(spine: DataFrame, data: DataFrame) -> DataFrame:
    return spine.select("spine_id", "patient_id_hashed", "cutoff_date", "cutoff_ts").join(
        data, "patient_id_hashed"
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


def measurement_features(spine: DataFrame, measurements: DataFrame) -> DataFrame:
    """Vital and lab features per spine row.

    Two passes: the measurement rows are reduced to one row of window statistics per
    (spine row, measure), then those rows are laid out as feature columns. Each raw
    row feeds 13 aggregates instead of one per feature, ~60, which makes the gold job
    faster.
    """
    rows = _on_spine(spine, measurements).filter(
        known_at_cutoff(F.col("observation_ts"), F.col("observation_date"))
    )
    date, cutoff, value = F.col("observation_date"), F.col("cutoff_date"), F.col("value_numeric")

    def within(days: int) -> Column:
        return in_window(date, cutoff, days)

    stats = rows.groupBy("spine_id", "cutoff_date", "measure").agg(
        F.avg(F.when(within(30), value)).alias("avg_30d"),
        F.avg(F.when(within(90), value)).alias("avg_90d"),
        F.avg(F.when(within(365), value)).alias("avg_365d"),
        F.max(F.when(within(30), value)).alias("max_30d"),
        F.max(F.when(within(365), value)).alias("max_365d"),
        F.min(F.when(within(365), value)).alias("min_365d"),
        F.count(F.when(within(365), value)).alias("values_365d"),
        F.max_by(value, F.col("observation_ts")).alias("last"),
        F.max(date).alias("last_date"),
        # Least-squares slope of the year's values, in units per 365 days.
        (F.regr_slope(F.when(within(365), value), F.when(within(365), day_number(date))) * 365).alias(
            "slope_365d"
        ),
        F.max(F.when(within(90), F.col("is_abnormal"))).alias("any_abnormal_90d"),
        F.count(F.when(within(90) & F.col("is_abnormal"), True)).alias("abnormal_90d"),
        F.count(F.when(within(365), True)).alias("rows_365d"),
    )
    measure = F.col("measure")

    def of(name: str, stat: str) -> Column:
        return F.max(F.when(measure == name, F.col(stat)))

    features: list[Column] = [of(vital, "avg_30d").alias(f"avg_{short(vital)}_30d") for vital in VITALS]
    features += [
        of("bp_systolic", "max_30d").alias("max_bp_systolic_30d"),
        of("bp_systolic", "avg_365d").alias("avg_bp_systolic_365d"),
        of("bp_diastolic", "avg_365d").alias("avg_bp_diastolic_365d"),
        of("heart_rate", "avg_365d").alias("avg_heart_rate_365d"),
    ]
    for lab in FEATURE_LABS:
        name = short(lab)
        features += [
            of(lab, "avg_90d").alias(f"avg_{name}_90d"),
            of(lab, "max_365d").alias(f"max_{name}_365d"),
            of(lab, "min_365d").alias(f"min_{name}_365d"),
            F.coalesce(of(lab, "values_365d"), F.lit(0)).alias(f"{name}_count_365d"),
            of(lab, "last").alias(f"last_{name}"),
            F.datediff(cutoff, of(lab, "last_date")).alias(f"days_since_last_{name}"),
        ]
    for source, name in (
        ("hba1c", "hba1c"),
        ("glucose", "glucose"),
        ("bp_systolic", "bp_systolic"),
        ("body_weight", "weight"),
    ):
        features.append(of(source, "slope_365d").alias(f"{name}_slope_365d"))
    features += [
        of("bmi", "last").alias("last_bmi"),
        of("bmi", "avg_365d").alias("avg_bmi_365d"),
        of("body_weight", "last").alias("last_weight"),
        F.coalesce(of("glucose", "any_abnormal_90d"), F.lit(False)).alias("has_abnormal_glucose"),
        F.coalesce(of("hba1c", "any_abnormal_90d"), F.lit(False)).alias("has_abnormal_hba1c"),
        F.coalesce(F.sum(F.when(measure.isin(*FEATURE_LABS), F.col("abnormal_90d"))), F.lit(0)).alias(
            "abnormal_lab_count_90d"
        ),
        F.sum("rows_365d").alias("measurement_count_365d"),
    ]
    return stats.groupBy("spine_id", "cutoff_date").agg(*features).drop("cutoff_date")


def encounter_features(spine: DataFrame, encounters: DataFrame) -> DataFrame:
    rows = _on_spine(spine, encounters.filter(F.col("period_start").isNotNull())).filter(
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
    coded = conditions.join(F.broadcast(_value_set(conditions.sparkSession, groups, "code", "group")), "code")
    rows = _on_spine(spine, coded).filter(onset & ~abated)
    flags = [F.max(F.col("group") == group).alias(f"has_{group}_dx") for group in groups]
    counted = F.array_distinct(F.collect_list(F.when(F.col("group").isin(*COMORBIDITIES), F.col("group"))))
    return rows.groupBy("spine_id").agg(*flags, F.size(counted).alias("comorbidity_count"))


def _active_at_cutoff() -> Column:
    """A medication period covers the cutoff (an open period counts while the record is active)."""
    still_open = F.col("effective_end").isNull() & F.col("status").isin("active", "on-hold", "intended")
    return known_at_cutoff(F.col("effective_start"), F.col("start_date")) & (
        (F.col("end_date") >= F.col("cutoff_date")) | still_open
    )


def medication_features(spine: DataFrame, medications: DataFrame) -> DataFrame:
    classes = codesets.medication_classes()
    class_of = _value_set(medications.sparkSession, classes, "rxnorm_code", "med_class")
    rows = _on_spine(spine, medications.join(F.broadcast(class_of), "rxnorm_code", "left")).filter(
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


def _with_defaults(features: DataFrame) -> DataFrame:
    """Counts and flags of a spine row with no data are 0/false, not null."""
    fills = {
        f.name: (False if f.dataType.simpleString() == "boolean" else 0)
        for f in features.schema.fields
        if f.name.endswith(("_count", "_count_6m", "_count_365d", "_count_90d", "_dx"))
        or f.name.startswith(("has_", "on_"))
        or f.name
        in (
            "active_medication_count",
            "distinct_medications_365d",
            "comorbidity_count",
            "inpatient_days_365d",
        )
    }
    return features.fillna(fills)


def spine_features(
    spine: DataFrame,
    *,
    patients: DataFrame,
    measurements: DataFrame,
    encounters: DataFrame,
    conditions: DataFrame,
    medications: DataFrame,
) -> DataFrame:
    blocks = [
        demographic_features(spine, patients),
        measurement_features(spine, measurements),
        encounter_features(spine, encounters),
        condition_features(spine, conditions),
        medication_features(spine, medications),
    ]
    joined = reduce(lambda left, right: left.join(right, "spine_id", "left"), blocks, spine)
    return _with_defaults(joined)


def risk_flags(features: DataFrame) -> DataFrame:
    """SPEC §5 risk flags (include/codesets/clinical_thresholds.json) on each measure's
    mean over the rule's window; a missing measurement never raises a flag."""
    rules = codesets.clinical_rules()

    def met(name: str) -> Column:
        window = rules[name].window_days
        return rules[name].met(lambda measure: F.col(f"avg_{short(measure)}_{window}d"))

    hypertension = met("hypertension")
    return (
        features.withColumn("diabetes_risk_flag", met("diabetes"))
        .withColumn("hypertension_risk_flag", hypertension)
        .withColumn("cvd_risk_flag", met("high_ldl") | (met("high_total_cholesterol") & hypertension))
    )


def chronic_disease_features(
    as_of: dt.date,
    *,
    patients: DataFrame,
    measurements: DataFrame,
    encounters: DataFrame,
    conditions: DataFrame,
    medications: DataFrame,
) -> DataFrame:
    """One row per patient: everything known at the end of `as_of`."""
    spine = patients.select(
        F.col("patient_id_hashed").alias("spine_id"),
        "patient_id_hashed",
        F.lit(as_of).alias("cutoff_date"),
        F.lit(None).cast("timestamp").alias("cutoff_ts"),
    )
    features = spine_features(
        spine,
        patients=patients,
        measurements=measurements,
        encounters=encounters,
        conditions=conditions,
        medications=medications,
    )
    return (
        risk_flags(features)
        .drop("spine_id", "cutoff_date", "cutoff_ts")
        .withColumn("as_of_date", F.lit(as_of))
    )


# --- Medication adherence -----------------------------------------------


def covered_days(intervals: DataFrame, keys: list[str]) -> DataFrame:
    """Days covered by the union of [start, end] date intervals, per key."""
    ordered = Window.partitionBy(*keys).orderBy("start", "end")
    previous_end = F.max("end").over(ordered.rowsBetween(Window.unboundedPreceding, -1))
    starts_run = previous_end.isNull() | (F.col("start") > F.date_add(previous_end, 1))
    runs = intervals.withColumn("run", F.sum(starts_run.cast("int")).over(ordered))
    merged = runs.groupBy(*keys, "run").agg(F.min("start").alias("start"), F.max("end").alias("end"))
    return merged.groupBy(*keys).agg(
        F.sum(F.datediff("end", "start") + 1).alias("days_covered"),
        F.min("start").alias("first_covered"),
    )


def medication_adherence_features(medications: DataFrame, as_of: dt.date) -> DataFrame:
    """PDC over the last 180 days, from the supply periods of chronic medications.

    Supply: a MedicationStatement's effective period (a fill); for a drug the patient
    has no statements of, a MedicationRequest's start + expectedSupplyDuration x
    (1 + repeats). Days covered by any chronic medication
    (include/codesets/medication_classes.json) are counted once; the denominator
    runs from the window start, or the first supply in it, to the as-of date.
    """
    window_start = as_of - dt.timedelta(days=ADHERENCE_DAYS - 1)
    chronic_codes = [c for codes in codesets.medication_classes().values() for c in codes]
    meds = medications.filter(F.col("start_date") <= as_of)
    active = (F.col("end_date") >= as_of) | (
        F.col("effective_end").isNull() & F.col("status").isin("active", "on-hold", "intended")
    )
    medication = F.coalesce(F.col("rxnorm_code"), F.col("code"), F.col("medication_reference"))
    summary = meds.groupBy("patient_id_hashed").agg(
        F.count_distinct(F.when(active, medication)).alias("active_medication_count"),
        F.count_distinct(F.when(F.col("status").isin("stopped", "completed") & ~active, medication)).alias(
            "stopped_medication_count"
        ),
        F.avg("duration_days").alias("avg_medication_duration_days"),
        F.count_distinct(medication).alias("unique_medications"),
        F.count("*").alias("medication_record_count"),
    )
    chronic = meds.filter(F.col("rxnorm_code").isin(*chronic_codes))
    statements = chronic.filter(F.col("source_resource_type") == "MedicationStatement")
    # A request's supply is what it lets the patient take: expectedSupplyDuration x
    # (1 + repeats) from its start (not the authorization window). Used only for drugs
    # without statements: statements report actual supply, and a renewed order that
    # was never filled must not count as covered.
    request_supply = F.col("expected_supply_days") * (1 + F.coalesce("number_of_repeats_allowed", F.lit(0)))
    requests = chronic.filter(F.col("source_resource_type") == "MedicationRequest").join(
        statements.select("patient_id_hashed", "rxnorm_code").distinct(),
        ["patient_id_hashed", "rxnorm_code"],
        "left_anti",
    )
    requests = requests.withColumn(
        "end_date",
        F.coalesce(F.date_add("start_date", (F.round(request_supply) - 1).cast("int")), F.col("end_date")),
    )
    supply = (
        statements.select("patient_id_hashed", "start_date", "end_date")
        .unionByName(requests.select("patient_id_hashed", "start_date", "end_date"))
        .filter(F.col("end_date").isNotNull())
        .select(
            "patient_id_hashed",
            F.greatest(F.col("start_date"), F.lit(window_start)).alias("start"),
            F.least(F.col("end_date"), F.lit(as_of)).alias("end"),
        )
        .filter(F.col("start") <= F.col("end"))
    )
    covered = covered_days(supply, ["patient_id_hashed"])
    denominator = F.datediff(F.lit(as_of), F.col("first_covered")) + 1
    return (
        summary.join(covered, "patient_id_hashed", "left")
        .withColumn("days_covered_180d", F.coalesce("days_covered", F.lit(0)))
        .withColumn(
            "adherence_score",
            F.when(
                F.col("first_covered").isNotNull(),
                F.round(F.col("days_covered") / denominator * 100, 2),
            ),
        )
        .drop("days_covered", "first_covered")
        .withColumn("as_of_date", F.lit(as_of))
    )


# --- Readmission -----------------------------------------------


def inpatient_stays(encounters: DataFrame) -> DataFrame:
    return encounters.filter(
        F.col("encounter_class").isin(*INPATIENT_CLASSES)
        & ~F.coalesce(F.col("status").isin("cancelled", "entered-in-error"), F.lit(False))
        & F.col("period_start").isNotNull()
    )


def readmission_labels(stays: DataFrame, as_of: dt.date) -> DataFrame:
    """Discharges on or before as_of with readmission_30d: another stay of the same
    patient starting after the discharge and within 30 days of its date."""
    index = stays.filter(F.col("encounter_end_date") <= as_of).select(
        "encounter_id",
        "patient_id_hashed",
        "period_start",
        "period_end",
        F.col("encounter_date").alias("admission_date"),
        F.col("encounter_end_date").alias("discharge_date"),
        "length_of_stay_days",
        "duration_hours",
    )
    later = stays.filter(F.col("encounter_date") <= as_of).select(
        "patient_id_hashed",
        F.col("encounter_id").alias("next_id"),
        F.col("period_start").alias("next_start"),
        F.col("encounter_date").alias("next_date"),
    )
    # After the discharge instant, and at most 30 calendar days after the discharge date.
    readmitted = (
        index.join(later, "patient_id_hashed")
        .filter(
            (F.col("next_id") != F.col("encounter_id"))
            & (F.col("next_start") > F.col("period_end"))
            & (F.datediff(F.col("next_date"), F.col("discharge_date")) <= READMISSION_DAYS)
        )
        .groupBy("encounter_id")
        .agg(F.min_by("next_date", "next_start").alias("readmission_date"))
    )
    observable = F.date_add(F.col("discharge_date"), READMISSION_DAYS) <= F.lit(as_of)
    return (
        index.join(readmitted, "encounter_id", "left")
        .withColumn("label_observable", observable | F.col("readmission_date").isNotNull())
        .withColumn(
            "readmission_30d",
            F.when(F.col("readmission_date").isNotNull(), 1).when(observable, 0).cast("int"),
        )
        .withColumn("days_to_readmission", F.datediff("readmission_date", "discharge_date"))
    )


def readmission_features(
    as_of: dt.date,
    *,
    patients: DataFrame,
    measurements: DataFrame,
    encounters: DataFrame,
    conditions: DataFrame,
    medications: DataFrame,
) -> DataFrame:
    """One row per discharge: features known at the discharge time, and the label."""
    stays = inpatient_stays(encounters)
    labels = readmission_labels(stays, as_of)
    spine = labels.select(
        F.col("encounter_id").alias("spine_id"),
        "patient_id_hashed",
        F.col("discharge_date").alias("cutoff_date"),
        F.col("period_end").alias("cutoff_ts"),
    )
    general = spine_features(
        spine,
        patients=patients,
        measurements=measurements,
        encounters=encounters,
        conditions=conditions,
        medications=medications,
    )
    # History before this admission (the stay itself is not "prior"): encounters that
    # started before it, counted in the 365 days of recorded dates ending on the admission date.
    prior_year = in_window(F.col("prior_date"), F.col("admission_date"), 365)
    inpatient = F.col("encounter_class").isin(*INPATIENT_CLASSES)
    prior = (
        labels.select(
            F.col("encounter_id").alias("spine_id"),
            "patient_id_hashed",
            F.col("period_start").alias("index_start"),
            "admission_date",
        )
        .join(
            encounters.select(
                "patient_id_hashed",
                "encounter_class",
                F.col("period_start").alias("prior_start"),
                F.col("encounter_date").alias("prior_date"),
                F.col("encounter_end_date").alias("prior_end_date"),
            ),
            "patient_id_hashed",
        )
        .filter(F.col("prior_start") < F.col("index_start"))
        .groupBy("spine_id")
        .agg(
            F.count(F.when(inpatient & prior_year, True)).alias("prior_inpatient_count_365d"),
            F.count(F.when(F.col("encounter_class").isin(*EMERGENCY_CLASSES) & prior_year, True)).alias(
                "prior_emergency_count_365d"
            ),
            F.datediff(F.max("admission_date"), F.max(F.when(inpatient, F.col("prior_end_date")))).alias(
                "days_since_previous_discharge"
            ),
        )
    )
    return (
        labels.select(
            "encounter_id",
            "patient_id_hashed",
            "discharge_date",
            "length_of_stay_days",
            F.col("duration_hours").alias("stay_duration_hours"),
            "readmission_30d",
            "label_observable",
            "days_to_readmission",
        )
        .join(
            general.drop("patient_id_hashed", "cutoff_date", "cutoff_ts").withColumnRenamed(
                "spine_id", "encounter_id"
            ),
            "encounter_id",
            "left",
        )
        .join(prior.withColumnRenamed("spine_id", "encounter_id"), "encounter_id", "left")
        .fillna({"prior_inpatient_count_365d": 0, "prior_emergency_count_365d": 0})
        .withColumn("as_of_date", F.lit(as_of))
    )


# --- Job -----------------------------------------------


def gold_as_of(spark: SparkSession, lakehouse: str, as_of: dt.date | str) -> dt.date:
    """The as-of date to read gold at: `as_of`, or for "latest" the newest one gold has.
    Raises JobSkipped while gold has no features yet (nothing to train on or score)."""
    path = table_path(lakehouse, "gold", "chronic_disease_features")
    if not table_exists(spark, path):
        raise JobSkipped(f"no gold features yet at {path}: fhir_batch_pipeline's gold_aggregate writes them")
    if as_of != "latest":
        return as_of
    latest = read_table(spark, path).agg(F.max("as_of_date")).first()[0]
    if latest is None:
        raise JobSkipped(f"no gold features yet: {path} holds no rows")
    return latest


def as_of_argument(value: str) -> dt.date | str:
    """--as-of: YYYY-MM-DD, or `latest` (the newest gold as-of date)."""
    return value if value == "latest" else dt.date.fromisoformat(value)


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


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="gold_aggregate", description=__doc__.split("\n")[0])
    parser.add_argument("--lakehouse", required=True, help="lakehouse root URI")
    parser.add_argument("--as-of", required=True, type=dt.date.fromisoformat, help="YYYY-MM-DD")
    parser.add_argument(
        "--trend-days",
        type=int,
        default=90,
        help="days of daily trend rows (re)written, ending at --as-of (default 90)",
    )
    args = parser.parse_args(argv)
    if args.trend_days < 1:
        parser.error("--trend-days must be >= 1")
    return args


def run(spark: SparkSession, args: argparse.Namespace) -> dict[str, int]:
    as_of = args.as_of
    first_day = as_of - dt.timedelta(days=args.trend_days - 1)
    inputs = silver_inputs(spark, args.lakehouse)
    daily = daily_measures(inputs["measurements"].filter(F.col("observation_date") <= as_of)).cache()
    trend_slice = f"observation_date >= '{first_day}' AND observation_date <= '{as_of}'"
    as_of_slice = f"as_of_date = '{as_of}'"
    outputs = {
        "patient_vital_trends": (
            vital_trends(daily, first_day, as_of),
            trend_slice,
            ["observation_date"],
        ),
        "lab_result_trends": (
            lab_trends(daily, first_day, as_of),
            trend_slice,
            ["observation_date"],
        ),
        "chronic_disease_features": (
            chronic_disease_features(as_of, **inputs),
            as_of_slice,
            ["as_of_date"],
        ),
        "medication_adherence_features": (
            medication_adherence_features(inputs["medications"], as_of),
            as_of_slice,
            ["as_of_date"],
        ),
        "readmission_features": (
            readmission_features(as_of, **inputs),
            as_of_slice,
            ["as_of_date"],
        ),
    }
    counts = {}
    for table, (frame, slice_condition, partition_by) in outputs.items():
        path = table_path(args.lakehouse, "gold", table)
        overwrite_slice(frame, path, slice_condition, partition_by)
        # The overwrite wrote exactly the slice: its commit says how many rows (a count re-read them).
        counts[table] = last_commit_metrics(spark, path).get("numOutputRows", 0)
        log.info("Gold %s as of %s: %d rows", table, as_of, counts[table])
    daily.unpersist()
    release(inputs)
    return counts


def main(argv: list[str] | None = None, spark: SparkSession | None = None) -> dict[str, int]:
    configure_logging()
    args = parse_args(argv)
    spark = spark or build_spark_session("fhir-gold-aggregate")
    return run(spark, args)


if __name__ == "__main__":
    run_job(main)
