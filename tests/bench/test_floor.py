"""The benchmark floor flattens an Observation to the ViewDefinition's rows:
the observation itself, then one row per component."""

from __future__ import annotations

import json
from pathlib import Path

from pyspark.sql import functions as F

from bench.floor import OBSERVATION, flatten_observations

EXAMPLES = Path(__file__).resolve().parents[1] / "fixtures" / "fhir-samples" / "hl7-r4-examples"
VIEW = Path(__file__).resolve().parents[2] / "bench" / "observation_view.json"


def test_empty_arrays_give_nulls_not_an_index_error(spark, tmp_path):
    ndjson = tmp_path / "Observation.ndjson"
    bare = {"resourceType": "Observation", "id": "bare", "category": [], "code": {"coding": []}}
    ndjson.write_text(json.dumps({**bare, "interpretation": [], "component": []}) + "\n")
    parsed = spark.read.schema(OBSERVATION).json(str(ndjson))
    rows = flatten_observations(parsed.select(F.struct("*").alias("o"))).collect()

    assert [(r.observation_id, r.category, r.code, r.interpretation_code) for r in rows] == [
        ("bare", None, None, None)
    ]


def test_blood_pressure_gives_the_panel_row_and_one_row_per_component(spark, tmp_path):
    ndjson = tmp_path / "Observation.ndjson"
    example = json.loads((EXAMPLES / "Observation-blood-pressure.json").read_text())
    ndjson.write_text(json.dumps(example) + "\n")
    parsed = spark.read.schema(OBSERVATION).json(str(ndjson))
    rows = flatten_observations(parsed.select(F.struct("*").alias("o"))).collect()

    assert [(r.code, r.value, r.value_unit, r.interpretation_code) for r in rows] == [
        ("85354-9", None, None, "L"),
        ("8480-6", 107.0, "mm[Hg]", "N"),
        ("8462-4", 60.0, "mm[Hg]", "L"),
    ]
    assert {(r.observation_id, r.patient_reference, r.effective) for r in rows} == {
        ("blood-pressure", "Patient/example", "2012-09-17")
    }
    view_columns = [c["name"] for s in json.loads(VIEW.read_text())["select"] for c in _columns(s)]
    assert sorted(rows[0].asDict()) == sorted(view_columns)


def _columns(select: dict):
    yield from select.get("column", [])
    for nested in select.get("select", []) + select.get("unionAll", [])[:1]:
        yield from _columns(nested)
