"""Our engine runs the Pathling peer's view file and gives the floor's rows."""

from __future__ import annotations

import json
from pathlib import Path

from pyspark.sql import functions as F
from pyspark.testing import assertDataFrameEqual

from bench.floor import OBSERVATION, flatten_observations
from bench.view_engine import VIEW
from spark_jobs.sof.view import compile_view, view_rows

EXAMPLES = Path(__file__).resolve().parents[1] / "fixtures" / "fhir-samples" / "hl7-r4-examples"


def test_the_engine_gives_the_floors_rows_on_every_hl7_observation(spark, tmp_path):
    ndjson = tmp_path / "Observation.ndjson"
    examples = [json.loads(p.read_text()) for p in sorted(EXAMPLES.glob("Observation-*.json"))]
    ndjson.write_text("".join(json.dumps(e) + "\n" for e in examples))
    parsed = spark.read.schema(OBSERVATION).json(str(ndjson))
    floor = flatten_observations(parsed.select(F.struct("*").alias("o")))
    engine = view_rows(spark.read.text(str(ndjson)), compile_view(json.loads(VIEW.read_text())), "value")

    assert floor.count() > len(examples)  # components gave rows too
    assertDataFrameEqual(engine, floor.select(*engine.columns))
