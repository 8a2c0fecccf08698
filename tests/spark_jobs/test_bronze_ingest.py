"""Bronze ingestion: real sample data, hand-made bad input, reruns."""

from __future__ import annotations

import datetime as dt
import gzip
import json
import shutil
from collections import Counter
from pathlib import Path

import pytest
from delta.tables import DeltaTable
from pyspark.sql import functions as F
from pyspark.testing import assertDataFrameEqual

from spark_jobs.bronze.landing import LandingError, hadoop_uri, list_landing_files, read_documents
from spark_jobs.bronze.records import classified_records
from spark_jobs.bronze.tables import STATS_COLUMNS, TYPED_RAW_TABLES
from spark_jobs.lakehouse import STATS_COLUMNS_PROPERTY, read_table
from spark_jobs.session import configure_azure_storage
from tests.lakehouse_helpers import RUN_DATE, ingest
from tests.spark_plans import executed_operators


def expected_counts(folder: Path) -> tuple[Counter, Counter]:
    """Count the records in a landing folder with plain `json`, independently of the job."""
    ingested: Counter = Counter()
    quarantined: Counter = Counter()
    for path in folder.iterdir():
        if path.suffix == ".ndjson":
            for line in path.read_text().splitlines():
                if line.strip():
                    ingested[json.loads(line)["resourceType"]] += 1
            continue
        doc = json.loads(path.read_text())
        if "resourceType" not in doc:
            quarantined["missing_resource_type"] += 1
        elif doc["resourceType"] != "Bundle":
            ingested[doc["resourceType"]] += 1
        else:
            for entry in doc.get("entry", []):
                request = entry.get("request", {})
                method, url = request.get("method"), request.get("url", "")
                if method == "GET" or "$" in url or (method in {"PUT", "DELETE"} and "?" in url):
                    quarantined["unsupported_bundle_request"] += 1
                elif method == "DELETE":
                    ingested[url.split("/")[0]] += 1
                else:
                    ingested[entry["resource"]["resourceType"]] += 1
    return ingested, quarantined


def test_sample_data_counts_reconcile_with_the_input(spark, samples_lakehouse):
    landing, lakehouse, counts = samples_lakehouse
    ingested, quarantined = expected_counts(landing / "daily_extract" / RUN_DATE.isoformat())

    assert counts["ingested_by_type"] == dict(ingested)
    assert counts["quarantined_by_reason"] == dict(quarantined)
    assert (
        counts["read"]
        == counts["ingested"] + counts["quarantined"]
        == sum(ingested.values()) + sum(quarantined.values())
    )
    fhir_raw = read_table(spark, str(lakehouse / "bronze" / "fhir_raw"))
    by_type = {r.resource_type: r["count"] for r in fhir_raw.groupBy("resource_type").count().collect()}
    assert by_type == dict(ingested)
    # The typed tables hold exactly their type's rows.
    for table, resource_type in TYPED_RAW_TABLES.items():
        assert read_table(spark, str(lakehouse / "bronze" / table)).count() == ingested[resource_type]
    # The fixture's run is the first: the rerun test appends its own to this lakehouse.
    first_run = read_table(spark, str(lakehouse / "bronze" / "ingest_runs")).orderBy("started_at").first()
    assert (first_run.status, first_run.records_read, first_run.ingested, first_run.quarantined) == (
        "ingested",
        counts["read"],
        counts["ingested"],
        counts["quarantined"],
    )


def test_raw_json_is_the_exact_input_text(spark, samples_lakehouse, synthea_ndjson, hl7_examples):
    _, lakehouse, _ = samples_lakehouse
    fhir_raw = read_table(spark, str(lakehouse / "bronze" / "fhir_raw"))
    first_line = (synthea_ndjson / "Patient.ndjson").read_text().splitlines()[0]
    patient_id = json.loads(first_line)["id"]
    row = fhir_raw.filter(F.col("resource_id") == patient_id).first()
    assert row.resource_json == first_line
    assert row.source_file == f"daily_extract/{RUN_DATE}/Patient.ndjson"
    assert row.content_hash and len(row.content_hash) == 64

    whole_file = (hl7_examples / "Observation-decimal.json").read_text()
    decimal = fhir_raw.filter(F.col("source_file").endswith("Observation-decimal.json")).first()
    assert decimal.resource_json == whole_file  # 1.00 and 1E-22 exactly as given


def test_bundle_entries_get_identity_from_request_and_full_url(spark, samples_lakehouse):
    _, lakehouse, _ = samples_lakehouse
    fhir_raw = read_table(spark, str(lakehouse / "bronze" / "fhir_raw"))
    transaction = {
        (r.resource_type, r.resource_id, r.request_method, r.is_delete)
        for r in fhir_raw.filter(F.col("bundle_type") == "transaction").collect()
    }
    assert transaction == {
        (
            "Patient",
            "61ebe359-bfdc-4613-8bf2-c5e300945f0a",
            "POST",
            False,
        ),  # id from urn:uuid fullUrl
        ("Patient", "88f151c0-a954-468a-88bd-5ae15c08e059", "POST", False),
        ("Patient", "123", "PUT", False),
        ("Patient", "123a", "PUT", False),
        ("Patient", "234", "DELETE", True),  # a tombstone: no JSON, applied by silver
    }
    tombstone = fhir_raw.filter(F.col("is_delete")).first()
    assert tombstone.resource_json is None
    versions = fhir_raw.filter(F.col("resource_id") == "45").select("version_id").collect()
    assert sorted(r.version_id for r in versions) == ["1", "2"]


def test_a_bundle_line_in_ndjson_is_expanded_even_with_its_type_escaped(spark, tmp_path):
    """The entries branch only parses texts that can name a Bundle: plain or \\u-escaped."""
    folder = tmp_path / "landing" / "daily_extract" / RUN_DATE.isoformat()
    folder.mkdir(parents=True)

    def transaction(resource_type_json: str, patient_id: str) -> str:
        entry = {
            "fullUrl": f"urn:uuid:{patient_id}",
            "resource": {"resourceType": "Patient", "id": patient_id},
            "request": {"method": "PUT", "url": f"Patient/{patient_id}"},
        }
        rest = json.dumps({"type": "transaction", "entry": [entry]})
        return f'{{"resourceType": {resource_type_json}, {rest[1:]}'

    lines = [
        transaction('"Bundle"', "plain-1"),
        transaction('"\\u0042undle"', "escaped-1"),  # JSON for "Bundle", spelled with an escape
        json.dumps({"resourceType": "Patient", "id": "single-1"}),
    ]
    (folder / "mixed.ndjson").write_text("\n".join(lines) + "\n")

    counts = ingest(spark, tmp_path / "landing", tmp_path / "lakehouse")

    fhir_raw = read_table(spark, str(tmp_path / "lakehouse" / "bronze" / "fhir_raw"))
    rows = {(r.resource_type, r.resource_id, r.bundle_type) for r in fhir_raw.collect()}
    assert rows == {
        ("Patient", "plain-1", "transaction"),
        ("Patient", "escaped-1", "transaction"),
        ("Patient", "single-1", None),
    }
    assert (counts["read"], counts["quarantined"]) == (3, 0)


def test_each_plan_branch_parses_the_envelope_once(spark, tmp_path):
    """The optimizer may inline the parsed envelope into every expression that reads
    it: removing one branch of with_envelope's reason once made the plan parse each
    record's JSON up to 53 times instead of 7, and bronze 49 -> 70 s at 10k patients.

    7 = one parse per input kind (NDJSON lines, whole .json files) in the plain
    branch, two per input kind in the Bundle branch (its byte-search filter and
    its projection), one for the Bundle entries."""
    folder = tmp_path / "daily_extract" / RUN_DATE.isoformat()
    folder.mkdir(parents=True)
    (folder / "patients.ndjson").write_text(json.dumps({"resourceType": "Patient", "id": "p1"}) + "\n")
    (folder / "bundle.json").write_text(json.dumps({"resourceType": "Bundle", "type": "batch", "entry": []}))
    files = list_landing_files(spark, str(folder))
    records = classified_records(read_documents(spark, files))

    # A text scan lists the filters above it but evaluates none of them.
    parses = [
        o.expressions.count("JsonToStructs") for o in executed_operators(records) if o.name != "Scan text"
    ]
    assert sum(parses) == 7, parses


def test_bronze_tables_keep_statistics_only_on_audit_columns(spark, samples_lakehouse):
    _, lakehouse, _ = samples_lakehouse
    for table in ["fhir_raw", "observation_raw", "quarantine"]:
        path = lakehouse / "bronze" / table
        expected = set(STATS_COLUMNS[table])
        properties = DeltaTable.forPath(spark, str(path)).detail().first().properties
        assert set(properties[STATS_COLUMNS_PROPERTY].split(",")) == expected
        for commit in sorted((path / "_delta_log").glob("*.json")):
            for line in commit.read_text().splitlines():
                add = json.loads(line).get("add")
                if add and add.get("stats"):
                    stats = json.loads(add["stats"])
                    assert stats["numRecords"] > 0
                    assert set(stats.get("nullCount", {})) <= expected  # never resource_json or raw_text


def test_rerun_is_a_no_op_and_forced_rerun_rewrites_the_same_rows(spark, samples_lakehouse):
    landing, lakehouse, first = samples_lakehouse
    tables = ["fhir_raw", "quarantine", "observation_raw", "patient_raw"]
    before = {t: read_table(spark, str(lakehouse / "bronze" / t)).collect() for t in tables}

    again = ingest(spark, landing, lakehouse)
    assert again["status"] == "unchanged"
    for t in tables:
        assertDataFrameEqual(read_table(spark, str(lakehouse / "bronze" / t)), before[t])

    forced = ingest(spark, landing, lakehouse, RUN_DATE, force=True)
    assert forced == first
    content = ["resource_type", "resource_id", "content_hash", "source_file", "bundle_entry_index"]

    def rows(records):
        return sorted(tuple(r[c] for c in content) for r in records)

    assert rows(read_table(spark, str(lakehouse / "bronze" / "fhir_raw")).collect()) == rows(
        before["fhir_raw"]
    )


def test_another_date_adds_its_own_slice(spark, tmp_path, synthea_ndjson):
    landing = tmp_path / "landing"
    lakehouse = tmp_path / "lakehouse"
    day1, day2 = RUN_DATE, RUN_DATE + dt.timedelta(days=1)
    for day in (day1, day2):
        folder = landing / "daily_extract" / day.isoformat()
        folder.mkdir(parents=True)
        shutil.copy(synthea_ndjson / "Patient.ndjson", folder / "Patient.ndjson")
    ingest(spark, landing, lakehouse, day1)
    ingest(spark, landing, lakehouse, day2)
    patients = read_table(spark, str(lakehouse / "bronze" / "patient_raw"))
    per_day = {r.ingestion_date: r["count"] for r in patients.groupBy("ingestion_date").count().collect()}
    assert per_day == {day1: 9, day2: 9}


def test_bad_input_is_quarantined_with_its_reason_and_nothing_is_lost(spark, tmp_path):
    folder = tmp_path / "landing" / "daily_extract" / RUN_DATE.isoformat()
    folder.mkdir(parents=True)
    good = [
        {"resourceType": "Patient", "id": "good-1"},
        {"resourceType": "Observation", "id": "good-2", "status": "final"},
        # Keys that end in "id" and string ids at depth are not a wrong type.
        {"resourceType": "Observation", "id": "good-3", "valueId": 5, "component": [{"id": "c1"}]},
    ]
    bad_lines = {
        b'{"resourceType": "Patient", "id": "cut-': "truncated_record",
        b"[1, 2, 3]": "not_an_object",
        b"this is not json": "malformed_json",
        b'{"resourceType": "Spaceship", "id": "x1"}': "unknown_resource_type",
        b'{"resourceType": "Patient"}': "missing_id",
        b'{"id": "no-type"}': "missing_resource_type",
        b'{"resourceType": "Patient", "id": 12345}': "wrong_type",
        b'{"resourceType": ["Patient"], "id": "x2"}': "wrong_type",
        b'{"resourceType": "Patient", "id": "x3", "name": [{"id" :null}]}': "wrong_type",
        b'{"resourceType": "Patient", "id": "has space"}': "invalid_id",
        b'{"resourceType": "Patient", "id": "latin1-\xe9"}': "non_utf8",
    }
    lines = [json.dumps(r).encode() for r in good] + list(bad_lines) + [b"", b"   "]
    (folder / "mixed.ndjson").write_bytes(b"\n".join(lines) + b"\n")
    # A gzip file cut short: its whole lines are kept, the cut one is quarantined.
    gz = gzip.compress(
        b"\n".join(json.dumps({"resourceType": "Patient", "id": f"gz-{i}"}).encode() for i in range(200))
        + b"\n"
    )
    (folder / "cut.ndjson.gz").write_bytes(gz[: len(gz) // 2])
    (folder / "half-document.json").write_text('{"resourceType": "Bundle", "type": "collection", "entry": [')
    (folder / "readme.txt").write_text("not a FHIR file")

    counts = ingest(spark, tmp_path / "landing", tmp_path / "lakehouse")

    quarantine = read_table(spark, str(tmp_path / "lakehouse" / "bronze" / "quarantine"))
    reasons = Counter(r.reason for r in quarantine.collect())
    expected = Counter(bad_lines.values())
    expected.update({"truncated_file": 1, "truncated_record": 1, "unsupported_file_type": 1})
    assert reasons == expected
    non_utf8 = quarantine.filter(F.col("reason") == "non_utf8").first()
    assert non_utf8.raw_base64 is not None
    fhir_raw = read_table(spark, str(tmp_path / "lakehouse" / "bronze" / "fhir_raw"))
    ids = {r.resource_id for r in fhir_raw.collect()}
    gz_ids = {i for i in ids if i.startswith("gz-")}
    assert {"good-1", "good-2", "good-3"} <= ids
    assert gz_ids == {f"gz-{i}" for i in range(len(gz_ids))}  # a prefix of the file, in order
    assert 0 < len(gz_ids) < 200
    # Every non-blank input record is in exactly one table.
    assert counts["read"] == len(ids) + sum(expected.values())
    assert counts["ingested"] == len(ids)


def test_missing_or_empty_landing_folder_fails_with_one_clear_error(spark, tmp_path):
    with pytest.raises(LandingError, match="does not exist"):
        ingest(spark, tmp_path / "nowhere", tmp_path / "lakehouse")
    (tmp_path / "empty" / "daily_extract" / RUN_DATE.isoformat()).mkdir(parents=True)
    with pytest.raises(LandingError, match="holds no data files"):
        ingest(spark, tmp_path / "empty", tmp_path / "lakehouse")


def test_landing_in_azure_blob_storage_ingests_the_same_records(spark, azurite, samples_lakehouse, tmp_path):
    """wasb:// landing on a real Azurite: read through ABFS (Hadoop 3.5 has no WASB driver)."""
    landing, _, local_counts = samples_lakehouse
    container = azurite.container("fhir-landing")
    folder = landing / "daily_extract" / RUN_DATE.isoformat()
    for path in folder.iterdir():
        with path.open("rb") as data:
            container.upload_blob(f"daily_extract/{RUN_DATE}/{path.name}", data, overwrite=True)
    configure_azure_storage(spark, azurite.spark_environment)

    counts = ingest(
        spark, "wasb://fhir-landing@devstoreaccount1.blob.core.windows.net", tmp_path / "lakehouse"
    )

    assert counts == local_counts
    raw = read_table(spark, str(tmp_path / "lakehouse" / "bronze" / "fhir_raw"))
    assert raw.filter(F.col("source_file").startswith(f"daily_extract/{RUN_DATE}/")).count() == raw.count()


def test_wasb_uris_are_read_through_abfs():
    assert hadoop_uri("wasbs://c@acct.blob.core.windows.net/x/y") == (
        "abfss://c@acct.dfs.core.windows.net/x/y"
    )
    assert hadoop_uri("wasb://c@acct.blob.core.windows.net") == ("abfs://c@acct.dfs.core.windows.net")
    assert hadoop_uri("/local/landing") == "/local/landing"
