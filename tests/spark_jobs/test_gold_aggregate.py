"""Gold: values hand-checked on small constructed inputs (windows at their
boundaries), point-in-time guard, and the job on the sample data."""

from __future__ import annotations

import datetime as dt

import pytest
from pyspark.sql import functions as F
from pyspark.testing import assertDataFrameEqual

from spark_jobs import gold_aggregate
from spark_jobs.gold import job as gold_job
from spark_jobs.gold.adherence import medication_adherence_features
from spark_jobs.gold.chronic import chronic_disease_features
from spark_jobs.gold.feature_blocks import SPINE_BLOCKS, spine_features
from spark_jobs.gold.inputs import usable_measurements
from spark_jobs.gold.readmission import PRIOR_STAY_DEFAULTS, readmission_features
from spark_jobs.gold.spine import FeatureBlock, as_of_spine
from spark_jobs.gold.trends import daily_measures, lab_trends, vital_trends
from spark_jobs.lakehouse import read_table

AS_OF = dt.date(2026, 6, 30)
MEASUREMENTS = (
    "patient_id_hashed string, measure string, observation_date date, observation_ts timestamp, "
    "value_numeric double, is_abnormal boolean"
)
PATIENTS = "patient_id_hashed string, gender string, age_years int, age_as_of date"
ENCOUNTERS = (
    "patient_id_hashed string, encounter_id string, encounter_class string, status string, "
    "period_start timestamp, period_end timestamp, encounter_date date, encounter_end_date date, "
    "length_of_stay_days int, duration_hours double"
)
CONDITIONS = (
    "patient_id_hashed string, code string, onset_ts timestamp, onset_date date, recorded_ts timestamp, "
    "recorded_date date, abatement_ts timestamp, abatement_date date"
)
MEDICATIONS = (
    "patient_id_hashed string, source_resource_type string, rxnorm_code string, code string, "
    "medication_reference string, status string, effective_start timestamp, effective_end timestamp, "
    "start_date date, end_date date, duration_days int, expected_supply_days double, "
    "number_of_repeats_allowed bigint"
)


def day(offset: int) -> dt.date:
    """AS_OF + offset days."""
    return AS_OF + dt.timedelta(days=offset)


def at(offset: int, hour: int = 9) -> dt.datetime:
    return dt.datetime.combine(day(offset), dt.time(hour))


def recorded(offset: int, time: str) -> tuple[dt.datetime, dt.date]:
    """(UTC instant, date as recorded) of a FHIR dateTime on day AS_OF + offset at `time`
    with its offset, e.g. "22:11:20-05:00": what silver stores as *_ts and *_date."""
    local = dt.datetime.fromisoformat(f"{day(offset).isoformat()}T{time}")
    return local.astimezone(dt.UTC).replace(tzinfo=None), local.date()


def measurement(patient, measure, offset, value, abnormal=False, time="09:00:00Z"):
    instant, date = recorded(offset, time)
    return (patient, measure, date, instant, float(value), abnormal)


def encounter(
    patient,
    encounter_id,
    klass,
    start_offset,
    end_offset,
    status="finished",
    times=("08:00:00Z", "16:00:00Z"),
):
    (start, start_date), (end, end_date) = recorded(start_offset, times[0]), recorded(end_offset, times[1])
    return (
        patient,
        encounter_id,
        klass,
        status,
        start,
        end,
        start_date,
        end_date,
        (end_date - start_date).days,
        (end - start).total_seconds() / 3600,
    )


def condition(patient, code, onset_offset):
    onset, onset_date = recorded(onset_offset, "09:00:00Z")
    return (patient, code, onset, onset_date, None, None, None, None)


def medication(
    patient,
    rxnorm,
    start_offset,
    end_offset,
    kind="MedicationStatement",
    status="completed",
    supply_days=None,
    repeats=None,
):
    start = at(start_offset, 0)
    end = at(end_offset, 0) if end_offset is not None else None
    return (
        patient,
        kind,
        rxnorm,
        rxnorm,
        None,
        status,
        start,
        end,
        start.date(),
        end.date() if end else None,
        (end.date() - start.date()).days if end else None,
        supply_days,
        repeats,
    )


@pytest.fixture
def inputs(spark):
    def frames(measurements=(), patients=(), encounters=(), conditions=(), medications=()):
        return {
            "patients": spark.createDataFrame(list(patients), PATIENTS),
            "measurements": spark.createDataFrame(list(measurements), MEASUREMENTS),
            "encounters": spark.createDataFrame(list(encounters), ENCOUNTERS),
            "conditions": spark.createDataFrame(list(conditions), CONDITIONS),
            "medications": spark.createDataFrame(list(medications), MEDICATIONS),
        }

    return frames


def test_windows_are_by_date_and_exclude_their_far_boundary(inputs):
    data = inputs(
        patients=[("p1", "female", 59, day(-400))],
        measurements=[
            measurement("p1", "hba1c", -90, 7.0),  # exactly 90 days before: outside _90d
            measurement("p1", "hba1c", -89, 6.0),
            measurement("p1", "hba1c", 0, 6.2),
            measurement("p1", "bp_systolic", -30, 150),  # exactly 30 days before: outside _30d
            measurement("p1", "bp_systolic", -29, 130),
            measurement("p1", "glucose", 1, 300),  # after the as-of date: never used
        ],
    )
    [row] = chronic_disease_features(AS_OF, **data).collect()
    assert row.avg_hba1c_90d == pytest.approx(6.1)
    assert row.avg_bp_systolic_30d == pytest.approx(130.0)
    assert row.avg_glucose_90d is None
    assert row.last_hba1c == pytest.approx(6.2)
    assert row.days_since_last_hba1c == 0
    assert row.hba1c_count_365d == 3
    # Least-squares slope of (day -90, 7.0), (-89, 6.0), (0, 6.2), per 365 days.
    xs, ys = [-90, -89, 0], [7.0, 6.0, 6.2]
    mx, my = sum(xs) / 3, sum(ys) / 3
    slope = sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True)) / sum((x - mx) ** 2 for x in xs)
    assert row.hba1c_slope_365d == pytest.approx(slope * 365)
    # Aged from 59 at day -400 to the as-of date.
    assert row.age_years == 60
    assert row.as_of_date == AS_OF


@pytest.mark.parametrize(
    ("values", "flags"),
    [
        ({"hba1c": 6.5}, (True, False, False)),
        ({"hba1c": 6.4, "glucose": 126}, (True, False, False)),
        ({"hba1c": 6.4, "glucose": 125.9}, (False, False, False)),
        ({"bp_systolic": 139, "bp_diastolic": 90}, (False, True, False)),
        ({"bp_systolic": 140, "bp_diastolic": 80}, (False, True, False)),
        ({"ldl": 160}, (False, False, True)),
        ({"ldl": 159, "total_cholesterol": 240}, (False, False, False)),
        ({"ldl": 120, "total_cholesterol": 240, "bp_systolic": 145}, (False, True, True)),
        ({}, (False, False, False)),
    ],
)
def test_risk_flags_follow_the_spec(inputs, values, flags):
    data = inputs(
        patients=[("p1", "male", 50, AS_OF)],
        measurements=[measurement("p1", m, -5, v) for m, v in values.items()],
    )
    [row] = chronic_disease_features(AS_OF, **data).collect()
    assert (row.diabetes_risk_flag, row.hypertension_risk_flag, row.cvd_risk_flag) == flags


def test_daily_vital_trends_and_flags(inputs):
    data = inputs(
        measurements=[
            measurement("p1", "heart_rate", -1, 95),
            measurement("p1", "heart_rate", -1, 110),
            measurement("p1", "oxygen_saturation", -1, 88),
            measurement("p1", "bp_systolic", -1, 141),
            measurement("p1", "bp_diastolic", -1, 85),
            measurement("p1", "heart_rate", 0, 70),
        ]
    )
    daily = daily_measures(data["measurements"])
    rows = {r.observation_date: r for r in vital_trends(daily, day(-10), AS_OF).collect()}
    first = rows[day(-1)]
    assert (first.heart_rate_avg, first.heart_rate_min, first.heart_rate_max) == (102.5, 95.0, 110.0)
    assert (first.tachycardia_flag, first.hypoxia_flag, first.hypertension_flag) == (True, True, True)
    second = rows[day(0)]
    assert (second.tachycardia_flag, second.hypoxia_flag, second.hypertension_flag) == (False, False, False)


def test_lab_trends_use_date_windows_and_count_days_since_abnormal(inputs, spark):
    data = inputs(
        measurements=[
            measurement("p1", "glucose", -40, 200, abnormal=True),
            measurement("p1", "glucose", -20, 100),
            measurement("p1", "glucose", -6, 110),
            measurement("p1", "glucose", 0, 130),
        ]
    )
    daily = daily_measures(data["measurements"])
    rows = {r.observation_date: r for r in lab_trends(daily, day(-10), AS_OF).collect()}
    assert set(rows) == {day(-6), day(0)}  # only days in (as_of - trend_days, as_of] are written
    last = rows[day(0)]
    assert last.value_numeric == 130
    assert last.value_7d_avg == pytest.approx(120.0)  # -6 and 0; -20 is outside 7 days
    assert last.value_30d_avg == pytest.approx((100 + 110 + 130) / 3)  # -40 is outside 30 days
    assert last.value_90d_avg == pytest.approx((200 + 100 + 110 + 130) / 4)
    assert last.pct_change_7d_vs_30d == pytest.approx((120 - 340 / 3) / (340 / 3) * 100)
    assert last.trend_direction == "INCREASING"  # +5.9% > 5%
    assert last.days_since_abnormal == 40
    assert last.loinc_code == "2339-0"


def test_readmission_label_counts_day_30_not_day_31(inputs):
    data = inputs(
        patients=[("a", "male", 70, AS_OF), ("b", "female", 70, AS_OF), ("c", "male", 70, AS_OF)],
        encounters=[
            encounter("a", "a1", "IMP", -100, -95),
            encounter("a", "a2", "IMP", -65, -60),  # starts 30 days after a1's discharge date
            encounter("b", "b1", "IMP", -100, -95),
            encounter("b", "b2", "IMP", -64, -60),  # 31 days after
            encounter("c", "c1", "IMP", -20, -15),  # 30 days not over yet at the as-of date
            encounter("c", "c0", "AMB", -200, -200),
        ],
    )
    rows = {r.encounter_id: r for r in readmission_features(AS_OF, **data).collect()}
    assert (rows["a1"].readmission_30d, rows["a1"].days_to_readmission) == (1, 30)
    assert rows["b1"].readmission_30d == 0
    assert (rows["c1"].readmission_30d, rows["c1"].label_observable) == (None, False)
    assert "c0" not in rows  # ambulatory visits are not index stays
    assert rows["a2"].prior_inpatient_count_365d == 1
    assert rows["a2"].days_since_previous_discharge == 30
    assert rows["a1"].prior_inpatient_count_365d == 0


def test_an_as_of_date_includes_what_is_dated_on_it_in_the_records_offset(inputs):
    """Window boundaries that only the UTC dates cross: the recorded dates decide."""
    data = inputs(
        patients=[("p1", "female", 50, AS_OF)],
        measurements=[
            # The evening of the as-of date in New York is the next day in UTC: counted.
            measurement("p1", "bp_systolic", 0, 150, time="23:30:00-05:00"),
            # The morning of day -29 in Tokyo is day -30 in UTC: inside the 30 days.
            measurement("p1", "bp_systolic", -29, 160, time="00:30:00+09:00"),
            # The evening of day -30 in New York is day -29 in UTC: outside the 30 days.
            measurement("p1", "bp_systolic", -30, 200, time="22:00:00-05:00"),
            # The morning after the as-of date in Tokyo is still the as-of date in UTC: not counted.
            measurement("p1", "hba1c", 1, 9.0, time="07:30:00+09:00"),
            measurement("p1", "hba1c", 0, 6.0, time="23:00:00-08:00"),
        ],
    )
    [row] = chronic_disease_features(AS_OF, **data).collect()
    assert row.avg_bp_systolic_30d == pytest.approx(155.0)
    assert row.max_bp_systolic_30d == 160.0
    assert (row.avg_hba1c_90d, row.last_hba1c, row.days_since_last_hba1c) == (6.0, 6.0, 0)
    # The evening reading is that day's vital trend row, not the next day's.
    daily = daily_measures(data["measurements"])
    trend_days = {r.observation_date for r in vital_trends(daily, day(-1), AS_OF).collect()}
    assert trend_days == {AS_OF}


def test_readmission_counts_calendar_days_from_evening_discharges(inputs):
    """Discharged at 22:11 -05:00 and 22:48 -04:00: their UTC dates are a day later, which
    made an admission 31 calendar days later look like day 30."""
    evening_ny, evening_edt = ("08:00:00-05:00", "22:11:20-05:00"), ("08:00:00-04:00", "22:48:00-04:00")
    data = inputs(
        patients=[("a", "male", 70, AS_OF), ("b", "female", 70, AS_OF)],
        encounters=[
            encounter("a", "a1", "IMP", -100, -95, times=evening_ny),
            encounter("a", "a2", "IMP", -64, -60, times=("09:00:00-05:00", "12:00:00-05:00")),  # day 31
            encounter("b", "b1", "IMP", -100, -95, times=evening_edt),
            encounter("b", "b2", "IMP", -65, -60, times=("21:30:00-04:00", "12:00:00-04:00")),  # day 30
        ],
    )
    rows = {r.encounter_id: r for r in readmission_features(AS_OF, **data).collect()}
    assert (rows["a1"].discharge_date, rows["a1"].readmission_30d, rows["a1"].days_to_readmission) == (
        day(-95),
        0,
        None,
    )
    assert (rows["b1"].discharge_date, rows["b1"].readmission_30d, rows["b1"].days_to_readmission) == (
        day(-95),
        1,
        30,
    )
    assert rows["a2"].days_since_previous_discharge == 31
    assert rows["a1"].length_of_stay_days == 5


def test_adherence_is_pdc_over_180_days(inputs):
    metformin, lisinopril = "860975", "314076"
    data = inputs(
        medications=[
            # Two 60-day fills with a 60-day gap, and an overlapping refill counted once.
            medication("p1", metformin, -179, -120),
            medication("p1", metformin, -59, 0, status="active"),
            medication("p1", metformin, -30, -1),
            # A drug with only an order: its supply is 30 days x (1 + 1 repeat) from the start.
            medication(
                "p2",
                lisinopril,
                -59,
                300,
                kind="MedicationRequest",
                status="active",
                supply_days=30.0,
                repeats=1,
            ),
            # An authorization for a drug with statements is ignored for coverage.
            medication(
                "p1",
                metformin,
                -179,
                185,
                kind="MedicationRequest",
                status="active",
                supply_days=30.0,
                repeats=11,
            ),
        ]
    )
    rows = {
        r.patient_id_hashed: r for r in medication_adherence_features(data["medications"], AS_OF).collect()
    }
    assert rows["p1"].days_covered_180d == 120
    assert rows["p1"].adherence_score == pytest.approx(66.67)
    # p2's first supply starts 59 days before: 60 days covered out of 60.
    assert rows["p2"].days_covered_180d == 60
    assert rows["p2"].adherence_score == pytest.approx(100.0)
    assert rows["p1"].active_medication_count == 1


def test_features_do_not_change_when_data_after_the_cutoff_is_added(inputs):
    """The leakage guard: nothing dated after a row's cutoff reaches its features."""
    history = dict(
        patients=[("p1", "male", 66, day(-10))],
        measurements=[measurement("p1", "hba1c", -30, 6.1), measurement("p1", "bp_systolic", -3, 150)],
        encounters=[encounter("p1", "s1", "IMP", -50, -45), encounter("p1", "v1", "AMB", -10, -10)],
        conditions=[condition("p1", "38341003", -300)],
        medications=[medication("p1", "314076", -100, -10)],
    )
    future = dict(
        measurements=[measurement("p1", "hba1c", 1, 9.5), measurement("p1", "bp_systolic", 2, 200)],
        encounters=[encounter("p1", "s2", "IMP", 5, 9)],
        conditions=[condition("p1", "44054006", 3)],
        medications=[medication("p1", "860975", 2, 60, status="active")],
    )
    combined = {k: history.get(k, []) + future.get(k, []) for k in set(history) | set(future)}

    before = chronic_disease_features(AS_OF, **inputs(**history))
    after = chronic_disease_features(AS_OF, **inputs(**combined))
    assertDataFrameEqual(after, before)
    [row] = before.collect()
    assert (row.has_hypertension_dx, row.has_diabetes_dx, row.on_antidiabetic) == (True, False, False)
    assert (row.avg_hba1c_90d, row.avg_bp_systolic_30d, row.inpatient_count_365d) == (6.1, 150.0, 1)

    # Readmission features of stay s1 are as of its discharge: later data changes nothing
    # except its label, which is what happens after the discharge.
    def s1_features(data):
        return (
            readmission_features(AS_OF, **data)
            .filter(F.col("encounter_id") == "s1")
            .drop("readmission_30d", "label_observable", "days_to_readmission")
        )

    late = dict(measurements=[measurement("p1", "glucose", -44, 400)])
    assertDataFrameEqual(
        s1_features(inputs(**{k: history.get(k, []) + late.get(k, []) for k in history})),
        s1_features(inputs(**history)),
    )


def test_a_patient_without_records_gets_the_declared_defaults_and_nulls_elsewhere(inputs):
    """Counts and flags a block declares are 0/false without data; every other feature is
    unknown (null), not zero, whatever its name."""
    [row] = chronic_disease_features(AS_OF, **inputs(patients=[("p1", "female", 40, AS_OF)])).collect()
    declared = {}
    for block in SPINE_BLOCKS:
        declared.update(block.when_absent())
    assert {c: (type(row[c]), row[c]) for c in declared} == {c: (type(v), v) for c, v in declared.items()}
    assert (row.glucose_count_365d, row.inpatient_days_365d, row.has_diabetes_dx, row.on_statin) == (
        0,
        0,
        False,
        False,
    )
    known = {"patient_id_hashed", "age_years", "age_bucket", "gender", "is_male", "as_of_date"}
    flags = {"diabetes_risk_flag", "hypertension_risk_flag", "cvd_risk_flag"}
    assert {c for c, v in row.asDict().items() if v is not None} == set(declared) | known | flags
    assert (row.avg_glucose_90d, row.days_since_last_visit, row.avg_encounter_duration_hours) == (None,) * 3
    assert PRIOR_STAY_DEFAULTS == {"prior_inpatient_count_365d": 0, "prior_emergency_count_365d": 0}


@pytest.mark.parametrize(
    ("defaults", "refusal"),
    [
        ({"encounter_count_7d": 0}, "declares a default for encounter_count_7d, which it lacks"),
        ({"encounter_count_6m": False}, "default False does not fit encounter_count_6m"),
    ],
)
def test_a_block_whose_declared_defaults_do_not_fit_its_columns_is_refused(inputs, defaults, refusal):
    data = inputs(patients=[("p1", "female", 40, AS_OF)])
    encounters = next(block for block in SPINE_BLOCKS if block.name == "encounters")
    broken = FeatureBlock("encounters", "encounters", encounters.features, lambda: defaults)
    with pytest.raises(ValueError, match=refusal):
        spine_features(as_of_spine(data["patients"], AS_OF), (broken,), **data)


def test_the_command_line_refuses_a_trend_window_under_a_day(capsys):
    args = gold_aggregate.parse_args(["--lakehouse", "/lh", "--as-of", AS_OF.isoformat()])
    assert (args.lakehouse, args.as_of, args.trend_days) == ("/lh", AS_OF, 90)
    with pytest.raises(SystemExit) as refused:
        gold_aggregate.parse_args(["--lakehouse", "/lh", "--as-of", AS_OF.isoformat(), "--trend-days", "0"])
    assert refused.value.code == 2
    assert "--trend-days must be >= 1" in capsys.readouterr().err


# --- The job on the sample data -----------------------------------------------------------------


@pytest.fixture(scope="module")
def samples_gold(spark, samples_silver):
    _, lakehouse, _ = samples_silver
    measurements = usable_measurements(
        read_table(spark, str(lakehouse / "silver" / "observations_normalized"))
    )
    # Synthea's data stops years ago: take the as-of date of its most recent measurement.
    as_of = measurements.agg(F.max("observation_date")).first()[0]
    counts = gold_job.run(spark, lakehouse=str(lakehouse), as_of=as_of, trend_days=3650)
    return lakehouse, as_of, counts


def test_sample_synthea_gives_glucose_hba1c_and_bp_features(spark, samples_gold):
    lakehouse, as_of, counts = samples_gold
    features = read_table(spark, str(lakehouse / "gold" / "chronic_disease_features"))
    assert (
        counts["chronic_disease_features"]
        == features.count()
        == features.select("patient_id_hashed").distinct().count()
    )
    assert features.filter(F.col("last_glucose").isNotNull()).count() >= 5
    assert features.filter(F.col("last_hba1c").isNotNull()).count() >= 3
    assert features.filter(F.col("avg_bp_systolic_365d").isNotNull()).count() >= 1
    labs = read_table(spark, str(lakehouse / "gold" / "lab_result_trends"))
    assert {r.lab for r in labs.select("lab").distinct().collect()} >= {"glucose", "hba1c", "ldl", "hdl"}
    vitals = read_table(spark, str(lakehouse / "gold" / "patient_vital_trends"))
    assert vitals.filter(F.col("bp_systolic_avg").isNotNull()).count() > 10


def test_gold_rerun_for_the_same_date_gives_the_same_tables(spark, samples_gold):
    """Run again through the command line (gold_aggregate.main), as a task runs it."""
    lakehouse, as_of, counts = samples_gold
    tables = list(counts)
    before = {t: read_table(spark, str(lakehouse / "gold" / t)).collect() for t in tables}
    argv = ["--lakehouse", str(lakehouse), "--as-of", as_of.isoformat(), "--trend-days", "3650"]
    assert gold_aggregate.main(argv, spark) == counts
    for table in tables:
        assertDataFrameEqual(read_table(spark, str(lakehouse / "gold" / table)), before[table])


def test_only_usable_measurements_reach_gold(spark):
    silver = (
        spark.createDataFrame(
            [
                ("p1", "glucose", "final", False, True, 100.0, "ok"),
                ("p1", "glucose", "entered-in-error", True, True, 900.0, "error"),
                ("p1", "glucose", "cancelled", False, True, 800.0, "cancelled"),
                ("p1", "glucose", "final", False, False, 5.5, "unit not normalised"),
                ("p1", None, "final", False, False, 1.0, "not a tracked measure"),
            ],
            "patient_id_hashed string, measure string, status string, is_entered_in_error boolean, "
            "is_unit_normalized boolean, value_numeric double, note string",
        )
        .withColumn("observation_ts", F.lit(at(0)))
        .withColumn("observation_date", F.lit(AS_OF))
        .withColumn("is_abnormal", F.lit(None).cast("boolean"))
    )
    assert [r.value_numeric for r in usable_measurements(silver).collect()] == [100.0]
