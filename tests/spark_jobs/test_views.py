"""The SQL on FHIR ViewDefinition engine: the official conformance suite, errors that
name the view's path, repeat's depth limit, the PHI policy, the `run` command on the
Synthea export, and view tables in silver across versions and deletes."""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import json
from collections import Counter
from pathlib import Path

import pytest
from pyspark.sql import functions as F

from spark_jobs.lakehouse import PermanentJobError, read_table
from spark_jobs.sof import __main__ as views_cli
from spark_jobs.sof import phi_policy
from spark_jobs.sof.compiler import ViewCompileError
from spark_jobs.sof.view import compile_view, view_rows
from tests.lakehouse_helpers import RUN_DATE, TEST_PHI_KEY, ingest, normalize

SOF_TESTS = Path(__file__).parents[1] / "fixtures" / "fhir-samples" / "sof-tests"
SYNTHEA = Path(__file__).parents[1] / "fixtures" / "fhir-samples" / "synthea-ndjson-pathling"
# Experimental cases the engine misses, each explained in the README.
KNOWN_EXPERIMENTAL_MISSES = {
    ("fn_boundary.json", "decimal lowBoundary"),
    ("fn_boundary.json", "decimal highBoundary"),
}


def hashed(value: str) -> str:
    return hmac.new(TEST_PHI_KEY, value.encode(), hashlib.sha256).hexdigest()


def rows_of(spark, view: dict, resources: list[dict], **options) -> list[dict]:
    frame = spark.createDataFrame([(json.dumps(r),) for r in resources], "resource_json string")
    return [r.asDict(recursive=True) for r in view_rows(frame, compile_view(view, **options)).collect()]


def test_the_official_suite_passes_every_shareable_case(spark, tmp_path, capsys):
    report_path = tmp_path / "report.json"
    with pytest.raises(SystemExit) as ended:
        views_cli.main(["test", str(SOF_TESTS), "--report", str(report_path)])
    report = json.loads(report_path.read_text())
    cases = {
        (file, case["title"]): case
        for file in report
        for case in json.loads((SOF_TESTS / file).read_text())["tests"]
    }
    assert len(cases) == 134
    failed = {
        (file, test["name"]): test["result"]["reason"]
        for file, suite in report.items()
        for test in suite["tests"]
        if not test["result"]["passed"]
    }
    shareable_failed = {k: v for k, v in failed.items() if "experimental" not in cases[k].get("tags", [])}
    assert shareable_failed == {}
    assert set(failed) == KNOWN_EXPERIMENTAL_MISSES
    assert capsys.readouterr().out.strip().splitlines()[-1] == "132 passed, 2 failed"
    assert ended.value.code == 1


QUESTIONNAIRE = {
    "resourceType": "QuestionnaireResponse",
    "id": "qr",
    "status": "completed",
    "item": [{"linkId": "1", "item": [{"linkId": "1.1", "item": [{"linkId": "1.1.1"}]}]}, {"linkId": "2"}],
}
REPEAT_VIEW = {
    "resource": "QuestionnaireResponse",
    "select": [
        {
            "repeat": ["item"],
            "column": [{"name": "link", "path": "linkId"}, {"name": "i", "path": "%rowIndex"}],
        }
    ],
}


def test_repeat_reads_up_to_its_depth_limit_and_refuses_deeper_data(spark):
    at_limit = rows_of(spark, REPEAT_VIEW, [QUESTIONNAIRE], repeat_depth=3)
    assert [(r["link"], r["i"]) for r in at_limit] == [("1", 0), ("1.1", 1), ("1.1.1", 2), ("2", 3)]
    with pytest.raises(Exception, match=r"repeat: data nests deeper than the repeat depth limit \(2\)"):
        rows_of(spark, REPEAT_VIEW, [QUESTIONNAIRE], repeat_depth=2)


@pytest.mark.parametrize(
    ("select", "where", "message"),
    [
        (
            [{"column": [{"name": "id", "path": "id"}, {"name": "x", "path": "name.("}]}],
            None,
            r"select\[0\]\.column\[1\]\.path: invalid FHIRPath",
        ),
        (
            [{"forEach": "name", "column": [{"name": "x", "path": "nickname"}]}],
            None,
            r"select\[0\]\.column\[0\]\.path: FHIR R4 HumanName has no element 'nickname'",
        ),
        (
            [{"column": [{"name": "id", "path": "id"}]}],
            [{"path": "name.family"}],
            r"where\[0\]\.path: 'name\.family' is string, not boolean",
        ),
        (
            [{"column": [{"name": "x", "path": "deceased"}]}],
            None,
            r"select\[0\]\.column\[0\]\.path: .*choice element Patient\.deceased\[x\]",
        ),
        (
            [{"column": [{"name": "x", "path": "name.given.join(1)"}]}],
            None,
            r"select\[0\]\.column\[0\]\.path: join\(\) takes a string literal separator",
        ),
    ],
)
def test_a_bad_view_is_refused_with_the_path_to_the_bad_expression(spark, select, where, message):
    view = {"resourceType": "ViewDefinition", "resource": "Patient", "select": select}
    if where:
        view["where"] = where
    with pytest.raises(ViewCompileError, match=message):
        compile_view(view)


def test_views_written_for_other_runners_are_accepted(spark):
    view = {
        "resourceType": "http://hl7.org/fhir/uv/sql-on-fhir/StructureDefinition/ViewDefinition",
        "url": "http://example.org/ViewDefinition/pt",
        "status": "draft",
        "fhirVersion": ["4.0.1"],
        "meta": {
            "profile": ["http://hl7.org/fhir/uv/sql-on-fhir/StructureDefinition/ShareableViewDefinition"]
        },
        "text": {"status": "generated", "div": "<div/>"},
        "resource": "Patient",
        "select": [{"column": [{"name": "g", "path": "gender"}]}],
    }
    assert rows_of(spark, view, [{"resourceType": "Patient", "id": "a", "gender": "other"}]) == [
        {"g": "other"}
    ]


PHI_CASES = {
    "patient identifier": ("Patient", "identifier.value", "a patient identifier"),
    "name": ("Patient", "name.family.first()", "HumanName"),
    "joined given names": ("Patient", "name.given.join(' ')", "HumanName"),
    "telecom": ("Patient", "telecom.value.first()", "ContactPoint"),
    "address line": ("Patient", "address.line.first()", "an address line"),
    "birth date": ("Patient", "birthDate", "a birth date"),
    "raw patient reference": ("Observation", "subject.reference", "a raw reference"),
    "reference display": ("Observation", "subject.display", "display text"),
    "untyped reference key": ("Observation", "subject.getReferenceKey()", "a raw reference"),
    "patient id": ("Patient", "id", "use getResourceKey"),
    "narrative": ("Observation", "text.div", "narrative"),
    "free text value": ("Observation", "value.ofType(string)", "free text"),
    "joined free text": ("Observation", "value.ofType(string).join(',')", "free text"),
    "concatenated free text": ("Observation", "'x' + value.ofType(string)", "free text"),
    "note": ("Observation", "note.text.first()", "free-text note"),
    "string extension": ("Patient", "extension('http://x').value.ofType(string).first()", "free text"),
    "contained resource": ("Observation", "contained.first().id", "a contained resource"),
    "whole contained": ("Observation", "contained.first()", "whole"),
    "contained patient": ("Observation", "contained.ofType(Patient).gender.first()", "a contained resource"),
}


@pytest.mark.parametrize("case", sorted(PHI_CASES))
def test_the_phi_policy_refuses_each_kind_of_identifying_column(spark, case):
    resource, path, reason = PHI_CASES[case]
    view = {"resource": resource, "select": [{"column": [{"name": "leak", "path": path}]}]}
    compiled = compile_view(view)
    with pytest.raises(
        phi_policy.PhiPolicyError, match=rf"column 'leak': refused by the PHI policy: .*{reason}"
    ):
        phi_policy.check(compiled)


def test_a_contained_medication_is_judged_by_its_elements(spark):
    view = {
        "resource": "MedicationRequest",
        "select": [
            {
                "column": [
                    {
                        "name": "code",
                        "path": "contained.ofType(Medication)"
                        ".where('#' + id = %resource.medication.ofType(Reference).reference)"
                        ".code.coding.code.first()",
                    }
                ]
            }
        ],
    }
    phi_policy.check(compile_view(view))
    order = {
        "resourceType": "MedicationRequest",
        "id": "m1",
        "contained": [
            {"resourceType": "Patient", "id": "med1", "gender": "male"},
            {"resourceType": "Medication", "id": "med2", "code": {"coding": [{"code": "other"}]}},
            {"resourceType": "Medication", "id": "med1", "code": {"coding": [{"code": "860975"}]}},
        ],
        "medicationReference": {"reference": "#med1"},
    }
    assert rows_of(spark, view, [order]) == [{"code": "860975"}]


def test_a_silver_phi_tag_exempts_nothing_in_a_user_view(spark, tmp_path):
    views = tmp_path / "views"
    views.mkdir()
    column = {"name": "born", "path": "birthDate", "tag": [{"name": "silver-phi", "value": "age"}]}
    (views / "born.json").write_text(
        json.dumps({"name": "born", "resource": "Patient", "select": [{"column": [column]}]})
    )
    with pytest.raises(
        PermanentJobError, match=r"born\.json: column 'born': refused by the PHI policy: a birth date"
    ):
        normalize(spark, tmp_path / "no-lakehouse", RUN_DATE, views_folder=str(views))


def test_the_phi_policy_follows_a_value_through_foreach(spark):
    view = {
        "resource": "Patient",
        "select": [{"forEach": "name", "column": [{"name": "p", "path": "period.start"}]}],
    }
    with pytest.raises(phi_policy.PhiPolicyError, match=r"column 'p': .*a person's name \(HumanName\)"):
        phi_policy.check(compile_view(view))


def test_patient_keys_leave_hashed_and_clinical_columns_pass(spark):
    from spark_jobs import phi

    patient_view = {
        "resource": "Patient",
        "select": [{"column": [{"name": "key", "path": "getResourceKey()"}]}],
    }
    obs_view = {
        "resource": "Observation",
        "select": [
            {
                "column": [
                    {"name": "obs", "path": "getResourceKey()"},
                    {"name": "patient", "path": "subject.getReferenceKey(Patient)"},
                    {"name": "code", "path": "code.coding.first().code"},
                    {"name": "display", "path": "code.coding.first().display"},
                    {"name": "value", "path": "value.ofType(Quantity).value"},
                    {"name": "unit", "path": "value.ofType(Quantity).unit"},
                    {"name": "has_note", "path": "note.exists()"},
                ]
            }
        ],
    }
    observation = {
        "resourceType": "Observation", "id": "o1", "status": "final",
        "code": {"coding": [{"system": "http://loinc.org", "code": "8867-4", "display": "Heart rate"}]},
        "subject": {"reference": "Patient/p-123"}, "valueQuantity": {"value": 72, "unit": "/min"},
        "note": [{"text": "patient anxious"}],
    }  # fmt: skip
    frames = []
    for view, resource in (
        (patient_view, {"resourceType": "Patient", "id": "p-123"}),
        (obs_view, observation),
    ):
        compiled = compile_view(view)
        phi_policy.check(compiled)
        frame = spark.createDataFrame([(json.dumps(resource),)], "resource_json string")
        frames.append(
            phi_policy.hash_patient_keys(view_rows(frame, compiled), compiled, phi.hasher(TEST_PHI_KEY))
        )
    assert frames[0].first().key == hashed("p-123")
    assert frames[1].first().asDict() == {
        "obs": "o1", "patient": hashed("p-123"), "code": "8867-4", "display": "Heart rate",
        "value": 72.0, "unit": "/min", "has_note": True,
    }  # fmt: skip


def test_run_materializes_a_view_from_a_bulk_export(spark, tmp_path, monkeypatch):
    monkeypatch.setenv("FHIR_PHI_HASH_KEY", TEST_PHI_KEY.decode())
    out = tmp_path / "procedures"
    args = views_cli.parse_args(
        [
            "run",
            "--view",
            "include/views/procedures.json",
            "--source",
            str(SYNTHEA),
            "--out",
            str(out),
            "--format",
            "parquet",
        ]
    )
    summary = views_cli.run_view(args)
    lines = [json.loads(line) for line in (SYNTHEA / "Procedure.ndjson").read_text().splitlines()]
    assert summary["rows"] == len(lines) == 139
    first = lines[0]
    [row] = spark.read.parquet(str(out)).filter(F.col("procedure_id") == first["id"]).collect()
    assert row.patient_id_hashed == hashed(first["subject"]["reference"].removeprefix("Patient/"))
    assert (row.code, row.performed_start, row.performed_end) == (
        first["code"]["coding"][0]["code"], first["performedPeriod"]["start"], first["performedPeriod"]["end"]
    )  # fmt: skip


def test_run_refuses_a_view_that_would_leak_before_reading(spark, tmp_path, monkeypatch):
    monkeypatch.setenv("FHIR_PHI_HASH_KEY", TEST_PHI_KEY.decode())
    view = tmp_path / "names.json"
    view.write_text(
        json.dumps({"resource": "Patient", "select": [{"column": [{"name": "n", "path": "name.family"}]}]})
    )
    args = views_cli.parse_args(
        ["run", "--view", str(view), "--source", str(tmp_path / "missing"), "--out", str(tmp_path / "o")]
    )
    with pytest.raises(
        PermanentJobError, match=r"names\.json: column 'n': refused by the PHI policy: a person's name"
    ):
        views_cli.run_view(args)


def _procedure(status: str, updated: str, version: str) -> dict:
    return {
        "resourceType": "Procedure",
        "id": "proc-1",
        "meta": {"versionId": version, "lastUpdated": updated},
        "status": status,
        "code": {
            "coding": [{"system": "http://snomed.info/sct", "code": "80146002", "display": "Appendectomy"}]
        },
        "subject": {"reference": "Patient/p-9"},
        "performedDateTime": "2026-11-19T22:30:00-05:00",
    }


def _land(landing: Path, day: dt.date, name: str, document: dict | list) -> None:
    folder = landing / "daily_extract" / day.isoformat()
    folder.mkdir(parents=True, exist_ok=True)
    text = (
        "\n".join(json.dumps(r) for r in document) + "\n"
        if isinstance(document, list)
        else json.dumps(document)
    )
    (folder / name).write_text(text)


def test_a_one_file_view_becomes_a_silver_table_that_follows_versions_and_deletes(
    spark, tmp_path, monkeypatch
):
    """Adding a view is one JSON file in the configured folder; a newer version of a
    Procedure replaces its rows, a Bundle DELETE removes them."""
    views = tmp_path / "views"
    views.mkdir()
    (views / "procedures_per_day.json").write_text(json.dumps({
        "resourceType": "ViewDefinition", "name": "procedures_per_day", "status": "active",
        "resource": "Procedure",
        "select": [{"column": [
            {"name": "procedure_id", "path": "getResourceKey()"},
            {"name": "patient_key", "path": "subject.getReferenceKey(Patient)"},
            {"name": "status", "path": "status"},
            {"name": "performed", "path": "performed.ofType(dateTime)"},
        ]}],
    }))  # fmt: skip
    landing, lakehouse = tmp_path / "landing", tmp_path / "lakehouse"
    days = [RUN_DATE, RUN_DATE + dt.timedelta(days=1), RUN_DATE + dt.timedelta(days=2)]
    _land(landing, days[0], "procedures.ndjson", [_procedure("in-progress", "2026-11-20T01:00:00Z", "1")])
    bundled = {**_procedure("completed", "2026-11-20T01:00:00Z", "1"), "id": "proc-b"}
    bundled["subject"] = {"reference": "urn:uuid:5f1b0b0e-0000-4000-8000-00000000000b"}
    _land(landing, days[0], "bundle.json", {
        "resourceType": "Bundle", "id": "tx-b", "type": "transaction", "timestamp": "2026-11-20T01:00:00Z",
        "entry": [
            {"fullUrl": "urn:uuid:5f1b0b0e-0000-4000-8000-00000000000b",
             "resource": {"resourceType": "Patient", "id": "5f1b0b0e-0000-4000-8000-00000000000b"},
             "request": {"method": "POST", "url": "Patient"}},
            {"fullUrl": "urn:uuid:proc-b", "resource": bundled,
             "request": {"method": "POST", "url": "Procedure"}},
        ],
    })  # fmt: skip
    _land(landing, days[1], "procedures.ndjson", [_procedure("completed", "2026-11-21T01:00:00Z", "2")])
    _land(landing, days[2], "delete.json", {
        "resourceType": "Bundle", "id": "tx", "type": "transaction", "timestamp": "2026-11-22T12:00:00Z",
        "entry": [{"request": {"method": "DELETE", "url": "Procedure/proc-1"}}],
    })  # fmt: skip
    table = str(lakehouse / "silver" / "procedures_per_day")
    seen = []
    for day in days:
        ingest(spark, landing, lakehouse, day)
        normalize(spark, lakehouse, day, views_folder=str(views))
        rows = read_table(spark, table).select(
            "procedure_id", "patient_key", "status", "performed", "source_version_id"
        )
        seen.append([r.asDict() for r in rows.filter(F.col("procedure_id") == "proc-1").collect()])
        # The Patient of a reference inside a transaction Bundle is its entry's, hashed.
        [inside] = rows.filter(F.col("procedure_id") == "proc-b").collect()
        assert inside.patient_key == hashed("5f1b0b0e-0000-4000-8000-00000000000b")
    expected = {
        "procedure_id": "proc-1",
        "patient_key": hashed("p-9"),
        "performed": "2026-11-19T22:30:00-05:00",
    }
    assert seen[0] == [{**expected, "status": "in-progress", "source_version_id": "1"}]
    assert seen[1] == [{**expected, "status": "completed", "source_version_id": "2"}]
    assert seen[2] == []
    # The shipped views ran too, and a rerun of the first day does not bring the Procedure back.
    normalize(spark, lakehouse, days[0], views_folder=str(views))
    assert read_table(spark, table).filter(F.col("procedure_id") == "proc-1").isEmpty()
    shipped = read_table(spark, str(lakehouse / "silver" / "procedures")).collect()
    assert [r.procedure_id for r in shipped] == ["proc-b"]


def test_a_view_with_a_reserved_or_taken_name_stops_silver_before_reading(spark, tmp_path):
    views = tmp_path / "views"
    views.mkdir()
    (views / "dup.json").write_text(
        json.dumps(
            {
                "name": "procedures",
                "resource": "Procedure",
                "select": [{"column": [{"name": "s", "path": "status"}]}],
            }
        )
    )
    with pytest.raises(PermanentJobError, match=r"dup\.json: table name 'procedures' is taken"):
        normalize(spark, tmp_path / "no-lakehouse", RUN_DATE, views_folder=str(views))


def test_the_shipped_views_hold_every_resource_of_the_samples(spark, samples_silver):
    """HL7's examples and the Synthea export through bronze and silver: one row per
    Procedure and Immunization, one per AllergyIntolerance category."""
    from tests.spark_jobs.test_silver_normalize import _input_resources

    landing, lakehouse, summary = samples_silver
    resources = [r for r, method in _input_resources(landing) if method != "DELETE"]
    by_type = Counter(r["resourceType"] for r in resources)
    allergy_rows = sum(
        max(1, len(r.get("category", []))) for r in resources if r["resourceType"] == "AllergyIntolerance"
    )
    expected = {
        "procedures": by_type["Procedure"],
        "immunizations": by_type["Immunization"],
        "allergy_intolerances": allergy_rows,
    }
    assert (
        expected["procedures"] >= 139
        and expected["immunizations"] >= 102
        and expected["allergy_intolerances"] >= 3
    )
    for table, rows in expected.items():
        assert read_table(spark, str(lakehouse / "silver" / table)).count() == rows, table
        assert summary[table]["resources_changed"] > 0


def test_run_reads_the_newest_versions_from_bronze(spark, samples_silver, tmp_path, monkeypatch):
    """A lakehouse root as the source: bronze's fhir_raw, one row per live resource,
    written as Delta; the same rows as the silver table of the same view."""
    monkeypatch.setenv("FHIR_PHI_HASH_KEY", TEST_PHI_KEY.decode())
    _, lakehouse, _ = samples_silver
    out = tmp_path / "immunizations"
    view = "include/views/immunizations.json"
    summary = views_cli.run_view(
        views_cli.parse_args(["run", "--view", view, "--source", str(lakehouse), "--out", str(out)])
    )
    silver = read_table(spark, str(lakehouse / "silver" / "immunizations"))
    written = read_table(spark, str(out))
    assert summary["rows"] == silver.count() >= 102
    assert sorted(map(tuple, written.collect())) == sorted(
        map(tuple, silver.select(*written.columns).collect())
    )


def test_where_equal_then_first_is_found_by_position_not_by_a_lambda(spark):
    """Spark runs a filter's lambda row by row; silver's code lookups are positions."""
    view = {
        "resource": "Observation",
        "select": [{"column": [{"name": "c", "path": "code.coding.where(system = 'L').first().code"}]}],
    }
    codings = [{"system": "x", "code": "1"}, {"code": "2"}, {"system": "L", "code": "3"}, {"system": "L"}]
    observations = [
        {"resourceType": "Observation", "id": "a", "code": {"coding": codings}},
        {"resourceType": "Observation", "id": "b", "code": {"coding": codings[:2]}},
        {"resourceType": "Observation", "id": "c"},
    ]
    assert rows_of(spark, view, observations) == [{"c": "3"}, {"c": None}, {"c": None}]
    assert "lambdafunction" not in str(compile_view(view).fields)
