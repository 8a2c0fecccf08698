"""Our ViewDefinition engine on the Pathling peer's view: the same file, the same input.

    python -m bench.view_engine --input F [F ...] --out DIR

Reads the Observation NDJSON as text, runs bench/observation_view.json through
spark_jobs.sof (one `from_json` per resource with the schema the view reads, then
the compiled rows) and writes Parquet. The PHI policy is not applied: the view
selects raw references, as Pathling's run of it does. Prints one JSON line: rows,
seconds (read to written, the JVM start excluded, as for the floor and the peer).
"""

from __future__ import annotations

import json
from pathlib import Path

from pyspark.sql import DataFrame, SparkSession

from bench.floor import timed_to_parquet
from spark_jobs.sof.view import compile_view, view_rows

VIEW = Path(__file__).resolve().parent / "observation_view.json"


def _engine(spark: SparkSession, files: list[str]) -> DataFrame:
    compiled = compile_view(json.loads(VIEW.read_text()))
    return view_rows(spark.read.text(files), compiled, "value", all_of_type=True)


def main() -> None:
    timed_to_parquet("bench-view-engine", _engine)


if __name__ == "__main__":
    main()
