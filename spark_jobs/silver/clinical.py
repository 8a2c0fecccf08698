"""Silver's clinical transforms: the rows of silver's own ViewDefinitions
(include/silver_views/) -> the silver tables gold reads.

Each transform is a pure function of a DataFrame: the view's columns (Patient keys
already resolved inside Bundles and hashed), the provenance columns every silver
row carries (SOURCE_COLUMNS) and TYPE_MISMATCH. Columns the views tag
`silver-phi` (an MRN, a birth date, a postal code, ...) are hashed or reduced here
and never leave as read.

Dates (SPEC §5): each `*_ts` column is the event's exact instant in UTC; each
`*_date` column, and every day count, is the calendar date written in the record.
"""

from __future__ import annotations

from collections.abc import Callable

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

from spark_jobs import phi

HashFn = Callable[[Column], Column]

RXNORM = "http://www.nlm.nih.gov/research/umls/rxnorm"
# The view rows' flag that an element a view reads had the wrong JSON type (view_rows' mismatch).
TYPE_MISMATCH = "_type_mismatch"
SOURCE_COLUMNS = (
    "source_version_id",
    "source_last_updated",
    "source_ingestion_date",
    "source_content_hash",
    "source_version_order",
)


def fhir_timestamp(value: Column) -> Column:
    """FHIR dateTime/instant (with or without time, offset, or only a year) as a UTC timestamp;
    a date without a time is that date's midnight UTC."""
    return F.coalesce(
        F.try_to_timestamp(value),
        F.try_to_timestamp(value, F.lit("yyyy-MM")),
        F.try_to_timestamp(value, F.lit("yyyy")),
    )


def fhir_date(value: Column) -> Column:
    """The clinical date of a FHIR date/dateTime: the calendar date written in the record, in
    its own offset (`2026-01-20T22:11:20-05:00` is 2026-01-20, though its UTC instant falls on
    the 21st); a partial date is its first day. Null exactly when `fhir_timestamp` is."""
    # A cast to date reads the leading yyyy[-mm[-dd]] and ignores the time and offset.
    return F.when(fhir_timestamp(value).isNotNull(), value.try_cast("date"))


def with_quality(df: DataFrame, type_mismatch: Column, *issues: Column) -> DataFrame:
    """`quality_issues` (what is wrong or missing) and `is_valid` (nothing is)."""
    corrupt = F.when(type_mismatch, F.lit("type_mismatch"))
    none = F.array().cast("array<string>")
    # A concat of one-element arrays, not filter(array, lambda): Spark evaluates lambdas
    # row by row outside whole-stage codegen.
    listed = F.concat(
        *[F.when(issue.isNotNull(), F.array(issue)).otherwise(none) for issue in (corrupt, *issues)]
    )
    return df.withColumn("quality_issues", listed).withColumn("is_valid", F.size("quality_issues") == 0)


def subject_issue(has_subject: Column, patient_key: Column) -> Column:
    """`no_subject`, or `unresolved_subject` when the subject is no Patient found."""
    return F.when(~has_subject, F.lit("no_subject")).when(patient_key.isNull(), F.lit("unresolved_subject"))


def _finish(rows: DataFrame, columns: list[Column], *issues: Column) -> DataFrame:
    """The table's columns, the provenance, then the quality columns (`issues` read the view's columns)."""
    checked = with_quality(rows, F.col(TYPE_MISMATCH), *issues)
    return checked.select(*columns, *SOURCE_COLUMNS, "quality_issues", "is_valid")


def _subject_issue() -> Column:
    """subject_issue of a view row (its `has_subject` and hashed Patient key)."""
    return subject_issue(F.col("has_subject"), F.col("patient_id_hashed"))


def conditions(rows: DataFrame) -> DataFrame:
    """conditions_source rows -> conditions_normalized (comorbidities for gold)."""
    onset = F.coalesce(F.col("onset_at"), F.col("onset_period_start"))
    return _finish(
        rows,
        [
            F.col("condition_id"),
            F.col("patient_id_hashed"),
            F.col("encounter_id"),
            F.col("code_system"),
            F.col("code"),
            F.col("code_display"),
            F.col("category"),
            F.col("clinical_status"),
            F.col("verification_status"),
            (F.col("verification_status") == "entered-in-error").alias("is_entered_in_error"),
            fhir_timestamp(onset).alias("onset_ts"),
            fhir_date(onset).alias("onset_date"),
            fhir_timestamp(F.col("abatement_at")).alias("abatement_ts"),
            fhir_date(F.col("abatement_at")).alias("abatement_date"),
            fhir_timestamp(F.col("recorded_at")).alias("recorded_ts"),
            fhir_date(F.col("recorded_at")).alias("recorded_date"),
        ],
        _subject_issue(),
        F.when(F.col("code").isNull(), F.lit("no_code")),
    )


def encounters(rows: DataFrame) -> DataFrame:
    """encounters_source rows -> encounters_normalized."""
    start, end = fhir_timestamp(F.col("period_start_at")), fhir_timestamp(F.col("period_end_at"))
    start_date, end_date = fhir_date(F.col("period_start_at")), fhir_date(F.col("period_end_at"))
    return _finish(
        rows,
        [
            F.col("encounter_id"),
            F.col("patient_id_hashed"),
            F.col("status"),
            (F.col("status") == "entered-in-error").alias("is_entered_in_error"),
            *[
                F.col(c)
                for c in (
                    "encounter_class",
                    "encounter_class_system",
                    "encounter_type_code",
                    "encounter_type_display",
                    "reason_code",
                    "reason_display",
                    "discharge_disposition",
                    "service_provider_id",
                )
            ],
            start.alias("period_start"),
            end.alias("period_end"),
            ((F.unix_timestamp(end) - F.unix_timestamp(start)) / 3600.0).alias("duration_hours"),
            F.datediff(end_date, start_date).alias("length_of_stay_days"),
            start_date.alias("encounter_date"),
            end_date.alias("encounter_end_date"),
        ],
        _subject_issue(),
        F.when(start.isNull(), F.lit("no_period_start")),
        F.when(end < start, F.lit("period_end_before_start")),
    )


def _days(value: Column, code: Column, unit: Column) -> Column:
    """A Duration in days (null for units other than hours, days, weeks and months)."""
    unit = F.lower(F.coalesce(code, unit))
    factor = (
        F.when(unit.isin("d", "day", "days"), 1.0)
        .when(unit.isin("wk", "week", "weeks"), 7.0)
        .when(unit.isin("mo", "month", "months"), 30.0)
        .when(unit.isin("h", "hour", "hours"), 1.0 / 24)
    )
    return value * factor


def _medication(
    rows: DataFrame,
    resource_type: str,
    start_text: Column,
    end: Column,
    end_date: Column,
    specific: list[Column],
) -> DataFrame:
    """medications_normalized rows of either medication view. The medication's codes come
    from its CodeableConcept, else from the contained Medication its reference points at."""

    def code(part: str) -> Column:
        return F.when(F.col("concept_coded"), F.col(f"concept_{part}")).otherwise(F.col(f"contained_{part}"))

    is_statement = resource_type == "MedicationStatement"
    record_id = F.col("medication_statement_id" if is_statement else "medication_request_id")
    none = F.lit(None).cast("string")
    start, start_date = fhir_timestamp(start_text), fhir_date(start_text)
    reference = F.when(
        ~F.col("medication_reference_as_written").startswith("#"), F.col("medication_reference_as_written")
    )
    return _finish(
        rows,
        [
            F.concat(F.lit(f"{resource_type}/"), record_id).alias("medication_record_id"),
            F.lit(resource_type).alias("source_resource_type"),
            (record_id if is_statement else none).alias("medication_statement_id"),
            (none if is_statement else record_id).alias("medication_request_id"),
            F.col("patient_id_hashed"),
            F.col("encounter_id"),
            F.col("status"),
            (F.col("status") == "active").alias("is_active"),
            (F.col("status") == "entered-in-error").alias("is_entered_in_error"),
            code("rxnorm_code").alias("rxnorm_code"),
            F.coalesce(code("rxnorm_display"), code("code_display"), F.col("concept_text")).alias(
                "medication_name"
            ),
            code("code_system").alias("code_system"),
            code("code").alias("code"),
            reference.alias("medication_reference"),
            start.alias("effective_start"),
            end.alias("effective_end"),
            F.datediff(end_date, start_date).alias("duration_days"),
            start_date.alias("start_date"),
            end_date.alias("end_date"),
            *specific,
        ],
        _subject_issue(),
        F.when(start.isNull(), F.lit("no_start")),
        F.when(code("code").isNull() & reference.isNull(), F.lit("no_medication")),
    )


def medication_statements(rows: DataFrame) -> DataFrame:
    """medication_statements_source rows -> medications_normalized rows."""
    start_text = F.coalesce(F.col("effective_period_start"), F.col("effective_at"))
    end_text = F.col("effective_period_end")
    return _medication(
        rows,
        "MedicationStatement",
        start_text,
        fhir_timestamp(end_text),
        fhir_date(end_text),
        [
            F.lit(None).cast("string").alias("intent"),
            F.lit(None).cast("timestamp").alias("authored_on"),
            F.lit(None).cast("double").alias("expected_supply_days"),
            F.lit(None).cast("bigint").alias("number_of_repeats_allowed"),
            F.lit(None).cast("double").alias("dispense_quantity"),
            fhir_timestamp(F.col("date_asserted_at")).alias("date_asserted"),
        ],
    )


def medication_requests(rows: DataFrame) -> DataFrame:
    """medication_requests_source rows -> medications_normalized rows. A request's period
    is its dispense validity period, else authoredOn plus expectedSupplyDuration x
    (1 + numberOfRepeatsAllowed)."""
    supply_days = _days(
        F.col("supply_duration_value"), F.col("supply_duration_code"), F.col("supply_duration_unit")
    )
    repeats = F.col("number_of_repeats_allowed")
    start_text = F.coalesce(F.col("validity_start"), F.col("authored_at"))
    planned_days = F.round(supply_days * (1 + F.coalesce(repeats, F.lit(0)))).cast("int")
    end_text = F.col("validity_end")
    end = F.coalesce(
        fhir_timestamp(end_text), F.timestamp_add("DAY", planned_days, fhir_timestamp(start_text))
    )
    end_date = F.coalesce(fhir_date(end_text), F.date_add(fhir_date(start_text), planned_days))
    return _medication(
        rows,
        "MedicationRequest",
        start_text,
        end,
        end_date,
        [
            F.col("intent"),
            fhir_timestamp(F.col("authored_at")).alias("authored_on"),
            supply_days.alias("expected_supply_days"),
            repeats.alias("number_of_repeats_allowed"),
            F.col("dispense_quantity"),
            F.lit(None).cast("timestamp").alias("date_asserted"),
        ],
    )


def patients(
    rows: DataFrame, hash_id: HashFn, restricted_zip3: list[str], zip3_replacement: str
) -> DataFrame:
    """patients_source rows -> one de-identified row per patient.

    Age is in whole years at `age_as_of` (the ingestion date of this version, or the
    date of death), capped at 90; gold ages it forward to its as-of date. The address
    is the home address, else the first one.
    """

    def address(part: str) -> Column:
        return F.when(F.col("has_home_address"), F.col(f"home_{part}")).otherwise(
            F.col(f"first_address_{part}")
        )

    zip3 = F.substring(F.regexp_replace(address("postal_code"), r"[^0-9]", ""), 1, 3)
    zip3 = (
        F.when(F.length(zip3) < 3, F.lit(None))
        .when(zip3.isin(restricted_zip3), F.lit(zip3_replacement))
        .otherwise(zip3)
    )
    birth = fhir_date(F.col("birth_date"))
    death = fhir_date(F.col("deceased_at"))
    ingested = F.col("source_ingestion_date")
    age_as_of = F.least(ingested, F.coalesce(death, ingested))
    age = F.when(
        birth.isNotNull(),
        F.least(F.floor(F.months_between(age_as_of, birth) / 12).cast("int"), F.lit(phi.AGE_CAP)),
    )
    return _finish(
        rows,
        [
            F.col("patient_id_hashed"),
            hash_id(F.col("mrn")).alias("mrn_hashed"),
            F.col("gender"),
            age.alias("age_years"),
            phi.age_bucket(age).alias("age_bucket"),
            age_as_of.alias("age_as_of"),
            (F.coalesce(F.col("deceased_flag"), F.lit(False)) | death.isNotNull()).alias("is_deceased"),
            address("city").alias("city"),
            address("state").alias("state"),
            zip3.alias("postal_code_prefix"),
            address("country").alias("country"),
            F.col("marital_status_code"),
            F.col("race_code"),
            F.col("ethnicity_code"),
        ],
        F.when(age.isNull(), F.lit("no_birth_date")),
    )


def observations(
    rows: DataFrame, measures: DataFrame, severity_by_interpretation: dict[str, str]
) -> DataFrame:
    """observations_source rows (one per measurement) -> observations_normalized.

    A measurement's code is its LOINC coding, else its first. Tracked measures
    (`measures`: codesets.measure_lookup) get their value in the measure's unit;
    abnormal severity comes from the interpretation, else the resource's reference
    range, else the measure's default range.
    """
    code_system = F.coalesce(F.col("loinc_system"), F.col("first_code_system"))
    code = F.coalesce(F.col("loinc_code"), F.col("first_code"))
    effective = F.coalesce(
        F.col("effective_date_time"), F.col("effective_instant"), F.col("effective_period_start")
    )
    # When the observation happened: its effective time, else (none, or unreadable) when it was issued.
    observed = F.when(fhir_timestamp(effective).isNotNull(), effective).otherwise(F.col("issued"))
    value_type = (
        F.when(F.col("quantity_value").isNotNull(), "quantity")
        .when(F.col("has_codeable_concept"), "codeable_concept")
        .when(F.col("has_string"), "string")
        .when(F.col("value_boolean").isNotNull(), "boolean")
        .when(F.col("value_integer").isNotNull(), "integer")
        .when(F.col("has_absent_reason"), "absent")
        .otherwise("none")
    )
    original_value = F.coalesce(F.col("quantity_value"), F.col("value_integer").cast("double"))
    original_unit = F.coalesce(F.col("quantity_code"), F.col("quantity_unit"))
    range_unit = F.coalesce(
        *[F.col(f"range_{end}_{part}") for end in ("low", "high") for part in ("code", "unit")]
    )

    measure = F.col("measure")
    conversion = F.col("conversions")[original_unit]
    normalized = measure.isNotNull() & conversion.isNotNull()
    to_measure_unit = lambda v: v * conversion["factor"] + conversion["offset"]  # noqa: E731
    value = F.when(normalized, to_measure_unit(original_value)).otherwise(original_value)
    range_convertible = normalized & (range_unit.isNull() | (range_unit == original_unit))
    resource_low, resource_high = [
        F.when(range_convertible, to_measure_unit(F.col(limit))).when(measure.isNull(), F.col(limit))
        for limit in ("range_low", "range_high")
    ]
    has_resource_range = resource_low.isNotNull() | resource_high.isNotNull()
    low = F.when(has_resource_range, resource_low).when(normalized, F.col("normal_low"))
    high = F.when(has_resource_range, resource_high).when(normalized, F.col("normal_high"))

    interpretation_code = F.col("interpretation_code")
    severity_map = F.create_map(*[F.lit(x) for kv in severity_by_interpretation.items() for x in kv])
    interpreted = severity_map[interpretation_code]
    out_of_range = (value < low) | (value > high)
    critical = normalized & ((value < F.col("critical_low")) | (value > F.col("critical_high")))
    range_known = value.isNotNull() & (low.isNotNull() | high.isNotNull())
    from_range = (
        F.when(~range_known, F.lit(None))
        .when(F.coalesce(critical, F.lit(False)), "CRITICAL")
        .when(F.coalesce(out_of_range, F.lit(False)), "ABNORMAL")
        .otherwise("NORMAL")
    )
    severity = F.coalesce(interpreted, from_range)
    flag_source = (
        F.when(interpreted.isNotNull(), "interpretation")
        .when(range_known & has_resource_range, "reference_range")
        .when(range_known, "default_range")
    )
    observation_ts = fhir_timestamp(observed)
    rows = rows.join(F.broadcast(measures), "loinc_code", "left")
    return _finish(
        rows,
        [
            F.concat_ws("#", F.col("observation_id"), F.col("component_index").cast("string")).alias(
                "measurement_id"
            ),
            F.col("observation_id"),
            F.col("component_index").cast("int").alias("component_index"),
            F.col("patient_id_hashed"),
            F.col("encounter_id"),
            F.col("status"),
            (F.col("status") == "entered-in-error").alias("is_entered_in_error"),
            F.col("category"),
            F.col("panel_code"),
            code_system.alias("code_system"),
            code.alias("code"),
            F.coalesce(F.col("loinc_display"), F.col("first_code_display")).alias("code_display"),
            F.col("loinc_code"),
            F.col("loinc_display"),
            measure,
            F.col("measure_category"),
            value_type.alias("value_type"),
            value.alias("value_numeric"),
            F.when(normalized, F.col("measure_unit")).otherwise(original_unit).alias("value_unit"),
            normalized.alias("is_unit_normalized"),
            original_value.alias("value_original"),
            original_unit.alias("value_original_unit"),
            F.col("quantity_comparator").alias("value_comparator"),
            F.col("value_code_system"),
            F.col("value_code"),
            F.col("value_display"),
            F.col("value_boolean"),
            F.coalesce(F.col("absent_reason_code"), F.col("absent_reason_text")).alias("data_absent_reason"),
            low.alias("reference_range_low"),
            high.alias("reference_range_high"),
            interpretation_code,
            severity.alias("abnormal_severity"),
            F.when(severity.isNotNull(), severity.isin("ABNORMAL", "CRITICAL")).alias("is_abnormal"),
            flag_source.alias("abnormal_flag_source"),
            observation_ts.alias("observation_ts"),
            fhir_date(observed).alias("observation_date"),
            fhir_timestamp(F.col("issued")).alias("issued_ts"),
        ],
        _subject_issue(),
        F.when(observation_ts.isNull(), F.lit("no_effective_time")),
        F.when(code.isNull(), F.lit("no_code")),
        F.when(measure.isNotNull() & original_value.isNotNull() & ~normalized, F.lit("unit_not_normalized")),
    )
