"""Silver normalisation: pure transforms on tiny frames, a version/delete
scenario through bronze and silver, and the sample data end to end."""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import json
from collections import Counter
from pathlib import Path

import pytest
from pyspark.sql import functions as F
from pyspark.testing import assertDataFrameEqual

from spark_jobs import codesets, phi, silver_normalize
from spark_jobs.lakehouse import PermanentJobError, read_table
from spark_jobs.silver import changes, clinical, tables
from spark_jobs.silver import job as silver
from spark_jobs.sof.catalog import silver_source_view, silver_view_rows
from spark_jobs.sof.view import compile_view, view_rows
from tests.lakehouse_helpers import RUN_DATE, TEST_PHI_KEY, ingest, normalize
from tests.spark_plans import executed_operators

SILVER_TABLES = [t.name for t in tables.SILVER_TABLES]
# The tables of the ViewDefinitions shipped in include/views/.
VIEW_TABLES = sorted(
    json.loads(p.read_text())["name"]
    for p in (Path(__file__).parents[2] / "include" / "views").glob("*.json")
)


def hashed(patient_id: str) -> str:
    return hmac.new(TEST_PHI_KEY, patient_id.encode(), hashlib.sha256).hexdigest()


def bronze_rows(spark, entries: list[dict], ingestion_date: dt.date = RUN_DATE):
    """Rows shaped like a bronze typed table; `entries` give resource + optional bundle context."""
    rows = []
    for e in entries:
        resource = e["resource"]
        text = json.dumps(resource)
        rows.append(
            (
                resource["id"],
                resource.get("meta", {}).get("versionId"),
                resource.get("meta", {}).get("lastUpdated"),
                text,
                False,
                e.get("source_file", "daily_extract/x/a.json"),
                e.get("bundle_id"),
                e.get("full_url"),
                hashlib.sha256(text.encode()).hexdigest(),
                ingestion_date,
            )
        )
    df = spark.createDataFrame(
        rows,
        "resource_id string, version_id string, last_updated string, resource_json string, "
        "is_delete boolean, source_file string, bundle_id string, bundle_entry_full_url string, "
        "content_hash string, ingestion_date date",
    )
    df = df.withColumn("last_updated_ts", F.try_to_timestamp("last_updated")).withColumn(
        "bundle_timestamp", F.lit(None).cast("string")
    )
    return df.withColumn("version_order", changes.version_order(df))


def source_rows(spark, resource_type: str, entries: list[dict], patients=()):
    """Silver's own view of `resource_type` over bronze rows of `entries`, as the job
    reads it (`patients`: Patient entries whose fullUrls resolve urn:uuid references)."""
    live = bronze_rows(spark, entries).withColumn("resource_key", F.col("resource_id"))
    urn_map = silver.patient_urn_map(bronze_rows(spark, list(patients))) if patients else None
    return silver_view_rows(
        live,
        silver_source_view(tables.SOURCE_VIEWS[resource_type]),
        changes.source_columns(),
        phi.hasher(TEST_PHI_KEY),
        urn_map,
        clinical.TYPE_MISMATCH,
    )


def observations(spark, entries, patients=()):
    rows = source_rows(spark, "Observation", entries, patients)
    return clinical.observations(rows, codesets.measure_lookup(spark), codesets.interpretation_severity())


def test_blood_pressure_panel_gives_one_measurement_per_component(spark, hl7_examples):
    bp = json.loads((hl7_examples / "Observation-blood-pressure.json").read_text())
    rows = observations(spark, [{"resource": bp}]).select(
        "measurement_id",
        "code",
        "measure",
        "value_numeric",
        "value_unit",
        "abnormal_severity",
        "abnormal_flag_source",
        "observation_date",
        "patient_id_hashed",
    )
    expected = [
        (
            "blood-pressure#1",
            "8480-6",
            "bp_systolic",
            107.0,
            "mm[Hg]",
            "NORMAL",
            "interpretation",
            dt.date(2012, 9, 17),
            hashed("example"),
        ),
        (
            "blood-pressure#2",
            "8462-4",
            "bp_diastolic",
            60.0,
            "mm[Hg]",
            "ABNORMAL",
            "interpretation",
            dt.date(2012, 9, 17),
            hashed("example"),
        ),
    ]
    assertDataFrameEqual(rows, spark.createDataFrame(expected, rows.schema))


def test_observation_normalize_runs_as_compiled_whole_stages(spark, hl7_examples):
    """Spark interprets, row by row, any operator whose rows hold more than
    spark.sql.codegen.maxFields (100) nested fields, and any lambda: the parsed
    Observation must stay narrow enough for the explode and the joins, and no lambda
    may reach them."""
    bp = json.loads((hl7_examples / "Observation-blood-pressure.json").read_text())
    bundle = {"bundle_id": "b1", "source_file": "daily_extract/x/bundle.json"}
    patient = {"resource": {"resourceType": "Patient", "id": "example"}, "full_url": "urn:uuid:p", **bundle}
    rows = observations(spark, [{"resource": bp, **bundle}], patients=[patient])
    rows.collect()
    operators = executed_operators(rows)
    explodes = [o for o in operators if o.name == "Generate"]
    joins = [o for o in operators if o.name == "BroadcastHashJoin"]
    assert len(explodes) == 1 and len(joins) == 2, [o.name for o in operators]
    assert all(o.compiled for o in explodes + joins), [(o.name, o.compiled) for o in operators]
    for key in ("loinc_code", "patient_id_hashed"):  # the code-set join and the patient join
        assert sorted(key in o.columns for o in joins) == [False, True], key
    # The view's rows (its forEach and unionAll) are arrays built with `transform`, whose
    # lambdas run row by row in the one projection that builds them, before the explode.
    # (Spark's printed plan cuts that projection's field list short, hiding them.)
    assert [o.name for o in operators if "LambdaFunction" in o.expressions] == ["Project"]


def test_measurements_codings_and_quality_issues_on_edge_cases(spark):
    """Which measurements an Observation gives, and their codes: the own value is row 0
    when there is one or no component; the LOINC coding wins over the first."""
    loinc, other = "http://loinc.org", "http://example.org/codes"

    def observation(obs_id, codings, **elements):
        return {
            "resource": {
                "resourceType": "Observation",
                "id": obs_id,
                "status": "final",
                "subject": {"reference": "Patient/p1"},
                "effectiveDateTime": "2026-01-01",
                "code": {"coding": codings},
                **elements,
            }
        }

    components = [
        {"code": {"coding": [{"system": loinc, "code": "3"}]}, "valueInteger": 3},
        {"code": {"coding": [{"system": other, "code": "4"}]}, "valueBoolean": True},
    ]
    rows = observations(
        spark,
        [
            observation(
                "a",
                [{"system": other, "code": "1"}, {"system": loinc, "code": "2"}],
                valueQuantity={"value": 1.5},
                component=components,
            ),
            observation("b", [{"system": other, "code": "5"}], component=components[1:]),
            observation("c", []),
            observation("d", [{"system": loinc, "code": "6"}], dataAbsentReason={"text": "not asked"}),
        ],
    ).select("measurement_id", "code_system", "code", "loinc_code", "value_type", "quality_issues")
    expected = [
        ("a#0", loinc, "2", "2", "quantity", []),
        ("a#1", loinc, "3", "3", "integer", []),
        ("a#2", other, "4", None, "boolean", []),
        ("b#1", other, "4", None, "boolean", []),
        ("c#0", None, None, None, "none", ["no_code"]),
        ("d#0", loinc, "6", "6", "absent", []),
    ]
    assertDataFrameEqual(rows, spark.createDataFrame(expected, rows.schema))


def test_every_reference_form_resolves_to_the_same_patient_hash(spark):
    patient = {"resourceType": "Patient", "id": "pat-9"}
    in_bundle = {"bundle_id": "b1", "source_file": "daily_extract/x/bundle.json"}
    urn = "urn:uuid:7f0c7f8e-1d5b-4c8e-9b7a-1f2e3d4c5b6a"

    def obs(obs_id, reference, **context):
        resource = {
            "resourceType": "Observation",
            "id": obs_id,
            "status": "final",
            "code": {"coding": [{"system": "http://loinc.org", "code": "8867-4"}]},
            "subject": {"reference": reference},
            "effectiveDateTime": "2026-01-01",
            "valueQuantity": {"value": 70, "unit": "/min", "code": "/min"},
        }
        return {"resource": resource, **context}

    rows = observations(
        spark,
        [
            obs("by-urn", urn, **in_bundle),
            obs("relative", "Patient/pat-9"),
            obs("versioned", "Patient/pat-9/_history/3"),
            obs("absolute", "https://fhir.example.org/r4/Patient/pat-9"),
        ],
        patients=[{"resource": patient, "full_url": urn, **in_bundle}],
    )
    by_id = {r.observation_id: r.patient_id_hashed for r in rows.collect()}
    assert by_id == dict.fromkeys(["by-urn", "relative", "versioned", "absolute"], hashed("pat-9"))


def test_reference_keys_take_only_fhir_ids_of_the_named_type(spark):
    """getReferenceKey(Patient), as silver's views read subjects: the id pattern is ASCII
    letters, digits, '-' and '.', 1 to 64 of them."""
    cases = {
        "Patient/A-z.09": "A-z.09",
        "Patient/" + "a" * 64: "a" * 64,
        "Patient/" + "a" * 65: None,
        "Patient/caf\u00e9": None,
        "Patient/has_underscore": None,
        "Patient/": None,
        "Encounter/e1": None,
        "XPatient/p1": None,
        "https://example.org/fhir/Patient/p1/_history/2": "p1",
    }
    view = {
        "resource": "Observation",
        "select": [
            {
                "column": [
                    {"name": "reference", "path": "subject.reference"},
                    {"name": "key", "path": "subject.getReferenceKey(Patient)"},
                ]
            }
        ],
    }
    texts = [
        (json.dumps({"resourceType": "Observation", "subject": {"reference": reference}}),)
        for reference in cases
    ]
    rows = view_rows(spark.createDataFrame(texts, "resource_json string"), compile_view(view))
    assertDataFrameEqual(rows, spark.createDataFrame(list(cases.items()), rows.schema))


def test_glucose_in_mmol_per_litre_is_converted_to_mg_per_dl(spark):
    def glucose(obs_id, value, with_range):
        resource = {
            "resourceType": "Observation",
            "id": obs_id,
            "status": "final",
            "code": {"coding": [{"system": "http://loinc.org", "code": "15074-8"}]},
            "subject": {"reference": "Patient/p1"},
            "effectiveDateTime": "2026-03-04T08:00:00Z",
            "valueQuantity": {
                "value": value,
                "unit": "mmol/l",
                "system": "http://unitsofmeasure.org",
                "code": "mmol/L",
            },
        }
        if with_range:
            resource["referenceRange"] = [
                {"low": {"value": 3.9, "code": "mmol/L"}, "high": {"value": 5.5, "code": "mmol/L"}}
            ]
        return {"resource": resource}

    rows = observations(
        spark,
        [glucose("high", 7.0, True), glucose("critical", 30.0, False), glucose("ok", 5.0, False)],
    )
    got = {r.observation_id: r for r in rows.collect()}
    # 18.016 mg/dL per mmol/L (include/codesets/observation_measures.json)
    assert got["high"].value_numeric == pytest.approx(126.112)
    assert got["high"].value_unit == "mg/dL"
    assert got["high"].reference_range_low == pytest.approx(3.9 * 18.016)
    assert got["high"].reference_range_high == pytest.approx(5.5 * 18.016)
    assert (got["high"].abnormal_severity, got["high"].abnormal_flag_source) == (
        "ABNORMAL",
        "reference_range",
    )
    assert got["critical"].value_numeric == pytest.approx(540.48)
    assert (got["critical"].abnormal_severity, got["critical"].abnormal_flag_source) == (
        "CRITICAL",
        "default_range",
    )
    assert got["ok"].value_numeric == pytest.approx(90.08)
    assert got["ok"].abnormal_severity == "NORMAL"
    assert all(r.value_original_unit == "mmol/L" and r.is_unit_normalized for r in got.values())


def test_wrong_json_types_are_flagged_not_dropped(spark):
    resource = {
        "resourceType": "Observation",
        "id": "odd",
        "status": "final",
        "code": {"coding": [{"system": "http://loinc.org", "code": "8867-4"}]},
        "subject": {"reference": "Patient/p1"},
        "effectiveDateTime": "2026-01-01",
        "valueQuantity": {"value": "seventy", "unit": "/min"},
    }
    [row] = observations(spark, [{"resource": resource}]).collect()
    assert row.observation_id == "odd"
    assert row.is_valid is False
    assert "type_mismatch" in row.quality_issues


def normalized(spark, resource_type: str, resources: list[dict]):
    """Silver rows of `resources` of one type, as the job builds them (no Bundle context):
    silver's own view of the type, then its clinical transform."""
    rows = source_rows(spark, resource_type, [{"resource": r} for r in resources])
    return silver.CLINICAL_TRANSFORMS[resource_type](rows)


def utc(column: str):
    """A timestamp column as UTC text (the session's time zone), whatever Python's zone is."""
    return F.date_format(column, "yyyy-MM-dd HH:mm").alias(column)


def test_clinical_dates_are_the_dates_recorded_and_instants_are_utc(spark):
    """SPEC §5: the date is the calendar date written, in the record's own offset."""
    recorded = {
        "evening-new-york": "2026-01-20T23:30:00-05:00",
        "early-tokyo": "2026-01-20T00:30:00+09:00",
        "date-only": "2026-01-20",
        "utc": "2026-01-20T23:30:00Z",
        "partial": "2019-07",
    }
    resources = [dict(_hr(obs_id, 70.0), effectiveDateTime=when) for obs_id, when in recorded.items()]
    rows = observations(spark, [{"resource": r} for r in resources]).select(
        "observation_id", "observation_date", utc("observation_ts")
    )
    expected = [
        ("evening-new-york", dt.date(2026, 1, 20), "2026-01-21 04:30"),
        ("early-tokyo", dt.date(2026, 1, 20), "2026-01-19 15:30"),
        ("date-only", dt.date(2026, 1, 20), "2026-01-20 00:00"),
        ("utc", dt.date(2026, 1, 20), "2026-01-20 23:30"),
        ("partial", dt.date(2019, 7, 1), "2019-07-01 00:00"),
    ]
    assertDataFrameEqual(rows, spark.createDataFrame(expected, rows.schema))


def test_encounter_medication_and_condition_dates_are_local(spark):
    subject = {"subject": {"reference": "Patient/p1"}}
    # Admitted the evening of Jan 20 and discharged the evening of Jan 22 in New York: UTC
    # dates would say Jan 21 to Jan 23, the same two days' stay.
    stay = {
        "resourceType": "Encounter",
        "id": "e1",
        "status": "finished",
        "class": {"code": "IMP"},
        "period": {"start": "2026-01-20T21:00:00-05:00", "end": "2026-01-22T22:11:20-05:00"},
        **subject,
    }
    [encounter] = (
        normalized(spark, "Encounter", [stay])
        .select("encounter_date", "encounter_end_date", "length_of_stay_days", utc("period_end"))
        .collect()
    )
    assert tuple(encounter) == (dt.date(2026, 1, 20), dt.date(2026, 1, 22), 2, "2026-01-23 03:11")
    # An order written at 23:30 -05:00 for 30 days: supply from Jan 20 through Feb 19.
    order = {
        "resourceType": "MedicationRequest",
        "id": "m1",
        "status": "active",
        "intent": "order",
        "medicationCodeableConcept": {"coding": [{"system": clinical.RXNORM, "code": "860975"}]},
        "authoredOn": "2026-01-20T23:30:00-05:00",
        "dispenseRequest": {"expectedSupplyDuration": {"value": 30, "unit": "days", "code": "d"}},
        **subject,
    }
    [medication] = (
        normalized(spark, "MedicationRequest", [order])
        .select("start_date", "end_date", "duration_days", utc("effective_start"), utc("effective_end"))
        .collect()
    )
    assert tuple(medication) == (
        dt.date(2026, 1, 20),
        dt.date(2026, 2, 19),
        30,
        "2026-01-21 04:30",
        "2026-02-20 04:30",
    )
    diagnosis = {
        "resourceType": "Condition",
        "id": "c1",
        "code": {"coding": [{"system": "http://snomed.info/sct", "code": "44054006"}]},
        "onsetDateTime": "2026-01-20T00:30:00+09:00",
        "abatementDateTime": "2026-03-01",
        "recordedDate": "2026-01-20T23:59:00-08:00",
        **subject,
    }
    [condition] = (
        normalized(spark, "Condition", [diagnosis])
        .select("onset_date", "abatement_date", "recorded_date", utc("onset_ts"), utc("recorded_ts"))
        .collect()
    )
    assert tuple(condition) == (
        dt.date(2026, 1, 20),
        dt.date(2026, 3, 1),
        dt.date(2026, 1, 20),
        "2026-01-19 15:30",
        "2026-01-21 07:59",
    )


# --- Versions, components, deletes, reruns: through the real jobs ---------------------


def _write_day(landing: Path, day: dt.date, resources: list[dict], bundle: dict | None = None):
    folder = landing / "daily_extract" / day.isoformat()
    folder.mkdir(parents=True)
    (folder / "resources.ndjson").write_text("\n".join(json.dumps(r) for r in resources) + "\n")
    if bundle:
        (folder / "transaction.json").write_text(json.dumps(bundle))


def _bp(version: str, updated: str, components: list[tuple[str, float]], status="final"):
    return {
        "resourceType": "Observation",
        "id": "bp-1",
        "status": status,
        "meta": {"versionId": version, "lastUpdated": updated},
        "code": {"coding": [{"system": "http://loinc.org", "code": "85354-9"}]},
        "subject": {"reference": "Patient/p1"},
        "effectiveDateTime": "2026-11-01T09:00:00Z",
        "component": [
            {
                "code": {"coding": [{"system": "http://loinc.org", "code": code}]},
                "valueQuantity": {"value": value, "unit": "mmHg", "code": "mm[Hg]"},
            }
            for code, value in components
        ],
    }


def _hr(obs_id: str, value: float, status: str = "final", updated: str = "2026-11-01T10:00:00Z"):
    return {
        "resourceType": "Observation",
        "id": obs_id,
        "status": status,
        "meta": {"versionId": "1" if status == "final" else "2", "lastUpdated": updated},
        "code": {"coding": [{"system": "http://loinc.org", "code": "8867-4"}]},
        "subject": {"reference": "Patient/p1"},
        "effectiveDateTime": "2026-11-01T09:00:00Z",
        "valueQuantity": {"value": value, "unit": "/min", "code": "/min"},
    }


@pytest.fixture(scope="module")
def version_scenario(spark, tmp_path_factory):
    """Day 1: p1, p2, bp-1 v1 (two components), hr-1. Day 2: bp-1 v2 (systolic only),
    hr-1 entered-in-error, and a transaction Bundle deleting Patient/p2."""
    root = tmp_path_factory.mktemp("versions")
    landing, lakehouse = root / "landing", root / "lakehouse"
    day1, day2 = RUN_DATE, RUN_DATE + dt.timedelta(days=1)
    patients = [
        {
            "resourceType": "Patient",
            "id": p,
            "meta": {"lastUpdated": "2026-11-20T08:00:00Z"},
            "gender": "female",
            "birthDate": "1960-05-01",
        }
        for p in ("p1", "p2")
    ]
    _write_day(
        landing,
        day1,
        [
            *patients,
            _bp("1", "2026-11-01T09:05:00Z", [("8480-6", 150), ("8462-4", 95)]),
            _hr("hr-1", 72),
        ],
    )
    _write_day(
        landing,
        day2,
        [
            _bp("2", "2026-11-02T09:05:00Z", [("8480-6", 128)]),
            _hr("hr-1", 72, status="entered-in-error", updated="2026-11-02T10:00:00Z"),
        ],
        bundle={
            "resourceType": "Bundle",
            "id": "tx-1",
            "type": "transaction",
            "timestamp": "2026-11-21T12:00:00Z",
            "entry": [{"request": {"method": "DELETE", "url": "Patient/p2"}}],
        },
    )
    for day in (day1, day2):
        ingest(spark, landing, lakehouse, day)
        normalize(spark, lakehouse, day)
    snapshot = {t: read_table(spark, str(lakehouse / "silver" / t)).collect() for t in SILVER_TABLES}
    return lakehouse, day1, day2, snapshot


def test_newer_version_replaces_all_rows_of_the_resource(spark, version_scenario):
    lakehouse, *_ = version_scenario
    obs = read_table(spark, str(lakehouse / "silver" / "observations_normalized"))
    bp = obs.filter(F.col("observation_id") == "bp-1").select(
        "measurement_id", "code", "value_numeric", "source_version_id"
    )
    # v2 dropped the diastolic component: its row is gone, not left behind from v1.
    assert [tuple(r) for r in bp.collect()] == [("bp-1#1", "8480-6", 128.0, "2")]


def test_entered_in_error_is_kept_and_flagged(spark, version_scenario):
    lakehouse, *_ = version_scenario
    obs = read_table(spark, str(lakehouse / "silver" / "observations_normalized"))
    [hr] = obs.filter(F.col("observation_id") == "hr-1").collect()
    assert (hr.status, hr.is_entered_in_error) == ("entered-in-error", True)


def test_bundle_delete_removes_the_patient(spark, version_scenario):
    lakehouse, *_ = version_scenario
    patients = read_table(spark, str(lakehouse / "silver" / "patients_normalized"))
    assert {r.patient_id_hashed for r in patients.collect()} == {hashed("p1")}
    tombstones = read_table(spark, str(lakehouse / "silver" / "resource_tombstones")).collect()
    # The tombstone is keyed by the hashed id: no raw patient id in silver.
    assert [(t.resource_type, t.resource_key) for t in tombstones] == [("Patient", hashed("p2"))]


def test_reruns_and_lookback_reprocessing_change_nothing(spark, version_scenario):
    lakehouse, day1, day2, snapshot = version_scenario
    normalize(spark, lakehouse, day1)  # an older date again: must not resurrect p2 or bp-1 v1
    normalize(spark, lakehouse, day2)
    normalize(spark, lakehouse, day2, lookback_days=2)
    for table in SILVER_TABLES:
        assertDataFrameEqual(read_table(spark, str(lakehouse / "silver" / table)), snapshot[table])


def test_first_load_over_two_days_takes_the_newest_version_once(spark, tmp_path):
    """A first silver run over two bronze days: an older version, and the newer one
    delivered twice in one day (two files). Only some records apply, so silver has
    to pick them out of bronze: one row, the newer value."""
    landing, lakehouse = tmp_path / "landing", tmp_path / "lakehouse"
    day1, day2 = RUN_DATE, RUN_DATE + dt.timedelta(days=1)
    newer = _hr("hr-2", 80, updated="2026-11-02T10:00:00Z")
    _write_day(landing, day1, [_hr("hr-2", 72)])
    _write_day(landing, day2, [newer])
    (landing / "daily_extract" / day2.isoformat() / "resend.ndjson").write_text(json.dumps(newer) + "\n")
    for day in (day1, day2):
        ingest(spark, landing, lakehouse, day)
    bronze = read_table(spark, str(lakehouse / "bronze" / "observation_raw"))
    assert bronze.count() == 3

    summary = normalize(spark, lakehouse, day2, lookback_days=2)

    assert summary["observations_normalized"]["resources_changed"] == 1
    obs = read_table(spark, str(lakehouse / "silver" / "observations_normalized"))
    assert [(r.observation_id, r.value_numeric) for r in obs.collect()] == [("hr-2", 80.0)]


def test_a_silver_table_older_than_its_columns_asks_for_a_rebuild(spark, tmp_path):
    """Merging new columns into old rows would leave every unchanged resource's null."""
    path = str(tmp_path / "encounters_normalized")
    spark.createDataFrame(
        [("e1", dt.date(2026, 1, 20))], "encounter_id string, encounter_date date"
    ).write.format("delta").save(path)
    rows = spark.createDataFrame(
        [("e1", dt.date(2026, 1, 20), dt.date(2026, 1, 22))],
        "encounter_id string, encounter_date date, encounter_end_date date",
    )
    with pytest.raises(PermanentJobError, match=r"predates its columns \['encounter_end_date'\]: rebuild"):
        changes.replace_resource_rows(
            spark,
            path,
            rows,
            rows.select(F.col("encounter_id").alias("resource_key")),
            "encounter_id",
            "encounter_id",
            [],
        )


def test_first_load_summary_counts_resources_deletes_and_repeats(spark):
    schema = "resource_key string, version_order string, is_delete boolean, content_hash string"
    once_each = spark.createDataFrame(
        [("a", "1", False, "h1"), ("b", "1", True, "h2"), ("c", "1", False, "h3")], schema
    )
    assertDataFrameEqual(
        changes.first_load_summary(once_each),
        spark.createDataFrame([(1, 3, 1)], "most_records bigint, resources bigint, deletes bigint"),
    )
    # "a" twice (an update and its delete): one resource, which counts as deleted.
    repeated = once_each.union(spark.createDataFrame([("a", "2", True, "h4")], schema))
    [row] = changes.first_load_summary(repeated).collect()
    assert (row.most_records, row.resources, row.deletes) == (2, 3, 2)
    [empty] = changes.first_load_summary(once_each.limit(0)).collect()
    assert (empty.most_records, empty.resources, empty.deletes) == (None, 0, 0)


def test_first_load_with_a_delete_records_its_tombstone(spark, tmp_path, monkeypatch):
    """A first load where each resource appears once, one of them a delete: every
    record applies without select_changes, and the delete still leaves a tombstone."""
    landing, lakehouse = tmp_path / "landing", tmp_path / "lakehouse"
    _write_day(
        landing,
        RUN_DATE,
        [{"resourceType": "Patient", "id": "p1", "gender": "male", "birthDate": "1970-01-01"}],
        bundle={
            "resourceType": "Bundle",
            "id": "tx-2",
            "type": "transaction",
            "entry": [{"request": {"method": "DELETE", "url": "Patient/p3"}}],
        },
    )
    ingest(spark, landing, lakehouse, RUN_DATE)

    def not_needed(*_):
        raise AssertionError("a first load of resources seen once needs no select_changes")

    monkeypatch.setattr(silver, "select_changes", not_needed)
    summary = normalize(spark, lakehouse, RUN_DATE)

    assert summary["patients_normalized"]["resources_changed"] == 1
    assert summary["patients_normalized"]["resources_deleted"] == 1
    patients = read_table(spark, str(lakehouse / "silver" / "patients_normalized")).collect()
    assert [p.patient_id_hashed for p in patients] == [hashed("p1")]
    tombstones = read_table(spark, str(lakehouse / "silver" / "resource_tombstones")).collect()
    assert [(t.resource_type, t.resource_key) for t in tombstones] == [("Patient", hashed("p3"))]


def test_missing_phi_key_fails_before_any_work(monkeypatch, tmp_path):
    monkeypatch.delenv(phi.KEY_ENV_VAR, raising=False)
    with pytest.raises(phi.MissingPhiKeyError, match="FHIR_PHI_HASH_KEY is not set"):
        silver_normalize.main(["--lakehouse", str(tmp_path), "--run-date", "2026-11-20"])


# --- The sample data end to end -----------------------------------------------------------


def _input_resources(landing: Path) -> list[tuple[dict, str | None]]:
    """(resource, request method) for every resource in the landing folder, read with plain json."""
    found = []
    for path in sorted((landing / "daily_extract" / RUN_DATE.isoformat()).iterdir()):
        if path.suffix == ".ndjson":
            found += [(json.loads(line), None) for line in path.read_text().splitlines() if line.strip()]
            continue
        doc = json.loads(path.read_text())
        if "resourceType" not in doc:  # package.json: quarantined by bronze
            continue
        if doc["resourceType"] != "Bundle":
            found.append((doc, None))
            continue
        for entry in doc.get("entry", []):
            request = entry.get("request", {})
            if (
                "resource" in entry
                and "?" not in request.get("url", "")
                and "$" not in request.get("url", "")
            ):
                resource = dict(entry["resource"])
                resource.setdefault("id", entry.get("fullUrl", "").removeprefix("urn:uuid:"))
                found.append((resource, request.get("method")))
    return found


def test_sample_silver_rows_reconcile_with_the_input(spark, samples_silver):
    landing, lakehouse, summary = samples_silver
    resources = [r for r, _ in _input_resources(landing)]
    distinct = {(r["resourceType"], r["id"]) for r in resources}
    deleted = {("Patient", "234")}
    expected_ids = Counter(t for t, _ in distinct - deleted)

    def count(table, column):
        return read_table(spark, str(lakehouse / "silver" / table)).select(column).distinct().count()

    assert count("patients_normalized", "patient_id_hashed") == expected_ids["Patient"]
    assert count("encounters_normalized", "encounter_id") == expected_ids["Encounter"]
    assert count("conditions_normalized", "condition_id") == expected_ids["Condition"]
    assert count("medications_normalized", "medication_record_id") == (
        expected_ids["MedicationStatement"] + expected_ids["MedicationRequest"]
    )
    # Observations: one row per component, or one row when there are none or the
    # observation has its own result (any value[x] of R4's, or dataAbsentReason).
    # Ids seen twice (Observation/14 from two servers) keep one version.
    latest = {}
    for r in resources:
        if r["resourceType"] == "Observation":
            latest[r["id"]] = r

    def has_own_result(observation: dict) -> bool:
        return "dataAbsentReason" in observation or any(k.startswith("value") for k in observation)

    expected_rows = sum(
        len(o.get("component", [])) + (1 if has_own_result(o) or not o.get("component") else 0)
        for o in latest.values()
    )
    obs = read_table(spark, str(lakehouse / "silver" / "observations_normalized"))
    assert obs.count() == expected_rows
    assert obs.select("observation_id").distinct().count() == len(latest)


def test_sample_encounter_keeps_the_date_it_records(spark, samples_silver):
    """HL7's Encounter-emerg starts 2017-02-01T07:15:00+10:00: the 1st where it happened,
    though its UTC instant is on January 31st."""
    _, lakehouse, _ = samples_silver
    [emergency] = (
        read_table(spark, str(lakehouse / "silver" / "encounters_normalized"))
        .filter(F.col("encounter_id") == "emerg")
        .select("encounter_date", utc("period_start"))
        .collect()
    )
    assert tuple(emergency) == (dt.date(2017, 2, 1), "2017-01-31 21:15")


def test_sample_synthea_yields_the_tracked_measures(spark, samples_silver):
    _, lakehouse, _ = samples_silver
    obs = read_table(spark, str(lakehouse / "silver" / "observations_normalized"))
    synthea = obs.filter(F.col("patient_id_hashed").isNotNull() & F.col("is_unit_normalized"))
    per_measure = {r.measure: r["count"] for r in synthea.groupBy("measure").count().collect()}
    for measure in (
        "glucose",
        "hba1c",
        "bp_systolic",
        "bp_diastolic",
        "total_cholesterol",
        "ldl",
        "hdl",
        "creatinine",
        "hemoglobin",
        "body_weight",
        "bmi",
    ):
        assert per_measure.get(measure, 0) > 0, measure
    # Synthea's own codes are mapped, not only the seeds' codes (2339-0, 18262-6, 38483-4).
    codes = {r.code for r in synthea.filter(F.col("measure").isin("glucose", "ldl", "creatinine")).collect()}
    assert {"2339-0", "18262-6", "38483-4"} <= codes


def _phi_in_input(landing: Path) -> set[str]:
    """Identifiers and personal details of every patient in the input."""
    values: set[str] = set()
    for resource, _ in _input_resources(landing):
        if resource["resourceType"] != "Patient":
            continue
        if len(resource["id"]) >= 8:  # short example ids ("23", "f001") also name other things
            values.add(resource["id"])
        for name in resource.get("name", []):
            values.update(n for n in [name.get("family"), *name.get("given", [])] if n and len(n) > 3)
        values.update(i["value"] for i in resource.get("identifier", []) if len(i.get("value", "")) >= 6)
        values.update(t["value"] for t in resource.get("telecom", []) if t.get("value"))
        values.update(line for a in resource.get("address", []) for line in a.get("line", []))
        if resource.get("birthDate"):
            values.add(resource["birthDate"])
    return values


def test_no_phi_in_any_string_column_of_any_silver_table(spark, samples_silver):
    landing, lakehouse, _ = samples_silver
    forbidden = _phi_in_input(landing)
    assert len(forbidden) > 50  # names, MRNs, SSNs, phones, streets, birth dates of 20+ patients
    for table in SILVER_TABLES + VIEW_TABLES + ["resource_tombstones"]:
        df = read_table(spark, str(lakehouse / "silver" / table))
        strings = [
            f.name for f in df.schema.fields if f.dataType.simpleString() in ("string", "array<string>")
        ]
        seen = set()
        for row in df.select(*strings).collect():
            for value in row:
                for item in value if isinstance(value, list) else [value]:
                    if item:
                        seen.add(item)
        leaks = {v for v in forbidden for s in seen if v in s}
        assert not leaks, f"{table} leaks {sorted(leaks)[:5]}"


def test_silver_rerun_on_the_samples_is_a_no_op(spark, samples_silver):
    _, lakehouse, _ = samples_silver
    before = {
        t: read_table(spark, str(lakehouse / "silver" / t)).collect() for t in SILVER_TABLES + VIEW_TABLES
    }
    summary = normalize(spark, lakehouse)
    assert set(summary) == set(SILVER_TABLES + VIEW_TABLES)
    assert all(s["resources_changed"] == 0 and s["resources_deleted"] == 0 for s in summary.values())
    for table in SILVER_TABLES + VIEW_TABLES:
        assertDataFrameEqual(read_table(spark, str(lakehouse / "silver" / table)), before[table])
