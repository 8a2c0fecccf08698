"""Our ViewDefinition engine on the Pathling peer's view: the same file, the same input.

    python -m bench.view_engine --input F [F ...] --out DIR

Reads the Observation NDJSON as text, runs bench/observation_view.json through
spark_jobs.sof (one `from_json` per resource with the schema the view reads, then
the compiled rows) and writes Parquet. The PHI policy is not applied: the view
selects raw references, as Pathling's run of it does. Prints one JSON line: rows,
seconds (read to written, the JVM start excluded, as for the floor and the peer).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from spark_jobs.session import build_spark_session, without_parquet_dictionary
from spark_jobs.sof.view import compile_view, view_rows

VIEW = Path(__file__).resolve().parent / "observation_view.json"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--input", nargs="+", required=True, help="Observation NDJSON files")
    parser.add_argument("--out", required=True, help="Parquet output folder")
    args = parser.parse_args()
    spark = build_spark_session(
        "bench-view-engine", {"spark.ui.enabled": "false", **without_parquet_dictionary(["observation_id"])}
    )
    started = time.perf_counter()
    compiled = compile_view(json.loads(VIEW.read_text()))
    texts = spark.read.text(args.input)
    view_rows(texts, compiled, "value", all_of_type=True).write.mode("overwrite").parquet(args.out)
    seconds = time.perf_counter() - started
    rows = spark.read.parquet(args.out).count()
    print(json.dumps({"rows": rows, "seconds": round(seconds, 2)}))


if __name__ == "__main__":
    main()
