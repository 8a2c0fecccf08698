"""Tests of the synthetic FHIR generator (tools/fhir_generator) on real, parsed output."""

from __future__ import annotations

import gzip
import json
import subprocess
import sys
from collections import defaultdict
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path

import pytest

from tools.fhir_generator import generate

REPO_ROOT = Path(__file__).resolve().parents[2]
RESOURCE_TYPES = (
    "Patient",
    "Encounter",
    "Observation",
    "Condition",
    "MedicationRequest",
    "MedicationStatement",
)
CHRONIC_CONDITIONS = {"44054006", "59621000", "55822004", "431855005", "88805009", "13645005"}
DAY_D = date(2025, 6, 30)
DAY_AFTER = DAY_D + timedelta(days=1)


def folder_of(out: Path, day: date) -> Path:
    return out / "daily_extract" / day.isoformat()


class Extract:
    """Everything one generator run wrote, parsed."""

    def __init__(self, folder: Path):
        self.ndjson: dict[str, dict] = {}  # id -> resource
        self.bundles: list[dict] = []
        self.ids: list[str] = []
        for path in sorted(folder.glob("*.ndjson")):
            for line in path.read_text().splitlines():
                resource = json.loads(line)
                assert isinstance(resource, dict), path
                assert resource["resourceType"] == path.name.split(".")[0]
                assert resource["id"]
                self.ndjson[resource["id"]] = resource
                self.ids.append(resource["id"])
        for path in sorted(folder.glob("Bundle-transaction-*.json")):
            bundle = json.loads(path.read_text())
            self.bundles.append(bundle)
            self.ids.append(bundle["id"])
            self.ids.extend(entry["resource"]["id"] for entry in bundle["entry"])

    def resources(self):
        """Every resource, NDJSON and bundled."""
        yield from self.ndjson.values()
        for bundle in self.bundles:
            for entry in bundle["entry"]:
                yield entry["resource"]

    def by_id(self) -> dict[str, dict]:
        return {resource["id"]: resource for resource in self.resources()}


def references(node):
    """Every Reference.reference string anywhere inside a resource."""
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "reference" and isinstance(value, str):
                yield value
            else:
                yield from references(value)
    elif isinstance(node, list):
        for item in node:
            yield from references(item)


def patient_id(reference: str) -> str:
    return reference.rsplit("/", 1)[-1].removeprefix("urn:uuid:")


def when(timestamp: str) -> datetime:
    return datetime.fromisoformat(timestamp)


@pytest.fixture(scope="module")
def out(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("landing")


@pytest.fixture(scope="module")
def window_d(out):
    """300 patients, the default 730-day window ending 2025-06-30."""
    counts = generate(300, 11, out / "d", DAY_D, workers=1)
    return counts, folder_of(out / "d", DAY_D)


@pytest.fixture(scope="module")
def extract_d(window_d) -> Extract:
    return Extract(window_d[1])


@pytest.fixture(scope="module")
def extract_day_after(out) -> Extract:
    generate(300, 11, out / "d1", DAY_AFTER, workers=1)
    return Extract(folder_of(out / "d1", DAY_AFTER))


def test_same_arguments_give_identical_bytes_and_another_seed_differs(tmp_path):
    def run(name: str, seed: int, workers: int = 2) -> dict[str, bytes]:
        generate(120, seed, tmp_path / name, DAY_D, workers=workers, bundle_fraction=0.05, gzip=True)
        folder = folder_of(tmp_path / name, DAY_D)
        return {path.name: path.read_bytes() for path in sorted(folder.iterdir())}

    first, second, other = run("a", 5), run("b", 5), run("c", 6)
    assert any(name.endswith(".001.ndjson.gz") for name in first)  # both workers wrote
    assert not any(name.startswith(".") for name in first)  # no partial files left
    assert first == second
    assert first.keys() == other.keys()
    assert all(first[name] != other[name] for name in first)

    # One worker writes the same resources, only laid out in fewer files.
    single = run("single", 5, workers=1)

    def lines(files: dict[str, bytes], resource_type: str) -> list[bytes]:
        return sorted(
            line
            for name, data in files.items()
            if name.startswith(f"{resource_type}.")
            for line in gzip.decompress(data).splitlines()
        )

    for resource_type in RESOURCE_TYPES:
        assert lines(single, resource_type) == lines(first, resource_type)
    bundles = {name: data for name, data in first.items() if name.startswith("Bundle")}
    assert bundles and all(single[name] == data for name, data in bundles.items())


def test_gzip_holds_the_same_lines_as_plain_output(tmp_path):
    plain = generate(60, 2, tmp_path / "plain", DAY_D, workers=1)
    packed = generate(60, 2, tmp_path / "gz", DAY_D, workers=1, gzip=True)
    assert plain == packed
    for resource_type in RESOURCE_TYPES:
        name = f"{resource_type}.000.ndjson"
        text = (folder_of(tmp_path / "plain", DAY_D) / name).read_bytes()
        assert gzip.decompress((folder_of(tmp_path / "gz", DAY_D) / f"{name}.gz").read_bytes()) == text


def test_extracts_of_consecutive_days_agree_on_shared_resources(extract_d, extract_day_after):
    today, tomorrow = extract_d.by_id(), extract_day_after.by_id()
    shared = today.keys() & tomorrow.keys()
    assert len(shared) > 0.95 * len(today)
    for resource_id in shared:
        assert today[resource_id] == tomorrow[resource_id], resource_id
    # Everything updated after the first day of the D+1 window must still be there.
    first_day = DAY_AFTER - timedelta(days=729)  # a 730-day window covers 730 calendar days
    start = datetime.combine(first_day, time(0), UTC)
    for resource_id, resource in today.items():
        if when(resource["meta"]["lastUpdated"]) >= start:
            assert resource_id in tomorrow, resource_id
    # The day after brings new events.
    assert any(
        resource["meta"]["lastUpdated"].startswith(DAY_AFTER.isoformat()) for resource in tomorrow.values()
    )


def is_event(resource: dict) -> bool:
    """Not part of the snapshot every extract re-sends (Patients and the problem list)."""
    if resource["resourceType"] == "Patient":
        return False
    return not (
        resource["resourceType"] == "Condition"
        and resource["category"][0]["coding"][0]["code"] == "problem-list-item"
    )


def test_one_day_history_is_that_days_events(out, extract_day_after):
    counts = generate(300, 11, out / "incremental", DAY_AFTER, history_days=1, workers=1)
    daily = Extract(folder_of(out / "incremental", DAY_AFTER)).by_id()
    full = extract_day_after.by_id()
    events = {resource_id: r for resource_id, r in daily.items() if is_event(r)}
    assert counts["Encounter"] > 0 and counts["Observation"] > 0
    assert all(r["meta"]["lastUpdated"][:10] == DAY_AFTER.isoformat() for r in events.values())
    for resource_id, resource in events.items():
        assert full[resource_id] == resource
    expected = {
        resource_id
        for resource_id, r in full.items()
        if is_event(r) and r["meta"]["lastUpdated"][:10] == DAY_AFTER.isoformat()
    }
    assert set(events) == expected
    # The snapshot part is the same as in the full extract.
    snapshot = {resource_id for resource_id, r in full.items() if not is_event(r)}
    assert {resource_id for resource_id, r in daily.items() if not is_event(r)} == snapshot


def test_structure_references_and_unique_ids(window_d, extract_d):
    counts, _ = window_d
    assert len(extract_d.ids) == len(set(extract_d.ids)), "an id appears twice"
    assert sum(counts.values()) == len(extract_d.ids) - len(extract_d.bundles)
    assert 80 <= sum(counts.values()) / 300 <= 150  # resources per patient

    known = {(r["resourceType"], r["id"]) for r in extract_d.ndjson.values()}
    for resource in extract_d.ndjson.values():
        assert resource["meta"]["versionId"] == "1" and resource["meta"]["lastUpdated"]
        for reference in references(resource):
            resource_type, _, target = reference.partition("/")
            assert (resource_type, target) in known, reference

    assert extract_d.bundles, "300 patients give at least one Bundle"
    for bundle in extract_d.bundles:
        assert bundle["type"] == "transaction"
        full_urls = {entry["fullUrl"] for entry in bundle["entry"]}
        patients = 0
        for entry in bundle["entry"]:
            resource = entry["resource"]
            assert entry["fullUrl"] == f"urn:uuid:{resource['id']}"
            if resource["resourceType"] == "Patient":
                patients += 1
                assert entry["request"] == {"method": "PUT", "url": f"Patient/{resource['id']}"}
            else:
                assert entry["request"] == {"method": "POST", "url": resource["resourceType"]}
            for reference in references(resource):
                assert reference.startswith("urn:uuid:") and reference in full_urls, reference
        assert 1 <= patients <= 5


def test_clinical_signal(out):
    """Over a long window: diabetics' HbA1c climbs through 6.5, and readmissions within 30
    days depend on age and comorbidity."""
    generate(300, 11, out / "long", DAY_D, history_days=1800, workers=1)
    resources = list(Extract(folder_of(out / "long", DAY_D)).resources())
    patients = {r["id"]: r for r in resources if r["resourceType"] == "Patient"}
    diagnosed = defaultdict(dict)  # patient -> SNOMED code -> recorded
    hba1c = defaultdict(list)
    stays = defaultdict(list)
    for r in resources:
        if r["resourceType"] == "Condition" and r["category"][0]["coding"][0]["code"] == "problem-list-item":
            diagnosed[patient_id(r["subject"]["reference"])][r["code"]["coding"][0]["code"]] = when(
                r["recordedDate"]
            )
        elif (
            r["resourceType"] == "Observation"
            and r["code"]["coding"][0]["code"] == "4548-4"
            and r["status"] == "final"
            and "valueQuantity" in r
        ):
            hba1c[patient_id(r["subject"]["reference"])].append(
                (when(r["effectiveDateTime"]), r["valueQuantity"]["value"])
            )
        elif r["resourceType"] == "Encounter" and r["class"]["code"] == "IMP":
            stays[patient_id(r["subject"]["reference"])].append(
                (when(r["period"]["start"]), when(r["period"]["end"]))
            )

    # Diabetes diagnosed inside the window: lower values before the diagnosis, >= 6.5 after.
    progressed = 0
    for patient, conditions in diagnosed.items():
        onset = conditions.get("44054006")
        values = sorted(hba1c[patient])
        before = [v for t, v in values if t < onset] if onset else []
        after = [v for t, v in values if t >= onset] if onset else []
        if before and after and max(after) >= 6.5 and before[0] < min(after):
            progressed += 1
    assert progressed >= 5
    healthy = [v for p, vs in hba1c.items() if "44054006" not in diagnosed[p] for _, v in vs]
    assert sorted(healthy)[len(healthy) // 2] < 6.0

    discharges = []  # (risk from age and diagnosed comorbidities, readmitted within 30 days)
    for patient, periods in stays.items():
        periods.sort()
        birth = date.fromisoformat(patients[patient]["birthDate"])
        for i, (_, end) in enumerate(periods):
            readmitted = any(
                timedelta(0) <= start - end <= timedelta(days=30) for start, _ in periods[i + 1 :]
            )
            age = (end.date() - birth).days / 365.25
            comorbidities = sum(
                1
                for code, recorded in diagnosed[patient].items()
                if code in CHRONIC_CONDITIONS and recorded <= end
            )
            discharges.append((0.045 * (age - 65) + 0.6 * comorbidities, readmitted))
    labels = [readmitted for _, readmitted in discharges]
    assert any(labels) and not all(labels)
    assert 0.08 < sum(labels) / len(labels) < 0.4
    discharges.sort(key=lambda d: d[0])
    quarter = len(discharges) // 4
    bottom = [r for _, r in discharges[:quarter]]
    top = [r for _, r in discharges[-quarter:]]
    assert sum(top) / len(top) > sum(bottom) / len(bottom) + 0.15


def test_spark_reads_every_line(spark, tmp_path):
    from pyspark.sql import functions as F
    from pyspark.sql.types import StringType, StructField, StructType

    counts = generate(100, 4, tmp_path, DAY_D, workers=1)
    folder = folder_of(tmp_path, DAY_D)
    schema = StructType(
        [
            StructField("resourceType", StringType()),
            StructField("id", StringType()),
            StructField("_corrupt_record", StringType()),
        ]
    )
    frame = (
        spark.read.option("mode", "PERMISSIVE")
        .option("columnNameOfCorruptRecord", "_corrupt_record")
        .schema(schema)
        .json(str(folder / "*.ndjson"))
    )
    rows = (
        frame.groupBy("resourceType")
        .agg(F.count(F.lit(1)).alias("lines"), F.count("_corrupt_record").alias("corrupt"))
        .collect()
    )
    assert sum(row["corrupt"] for row in rows) == 0
    assert {row["resourceType"]: row["lines"] for row in rows} == {
        name: counts[name] for name in RESOURCE_TYPES
    }


def test_cli_writes_summary_and_refuses_a_full_folder(tmp_path):
    command = [
        sys.executable,
        "-m",
        "tools.fhir_generator",
        "--patients",
        "50",
        "--seed",
        "1",
        "--out",
        str(tmp_path),
        "--date",
        "2024-02-29",
        "--workers",
        "1",
    ]
    first = subprocess.run(command, cwd=REPO_ROOT, capture_output=True, text=True, check=False)
    assert first.returncode == 0, first.stderr
    assert "total=" in first.stdout and "resources_per_second=" in first.stdout
    folder = folder_of(tmp_path, date(2024, 2, 29))
    assert (folder / "Bundle-transaction-0000.json").exists()  # 50 patients: one Bundle
    before = {path.name: path.read_bytes() for path in folder.iterdir()}

    again = subprocess.run(command, cwd=REPO_ROOT, capture_output=True, text=True, check=False)
    assert again.returncode == 2
    assert "--overwrite" in again.stderr
    assert {path.name: path.read_bytes() for path in folder.iterdir()} == before

    replaced = subprocess.run(
        command + ["--overwrite", "--gzip"],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    assert replaced.returncode == 0, replaced.stderr
    assert not list(folder.glob("*.ndjson")) and list(folder.glob("*.ndjson.gz"))
