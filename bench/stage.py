"""Run one pipeline job the way an Airflow task does (its own process and JVM, one
OpenLineage run when a transport is configured: spark_jobs/lineage.py) and write what it
returned as JSON, for the benchmark harness:

    python -m bench.stage --summary OUT.json spark_jobs.silver_normalize --lakehouse ...
"""

from __future__ import annotations

import argparse
import importlib
import json
import sys
import time
from pathlib import Path

from spark_jobs import lineage


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--summary", required=True, type=Path, help="JSON file to write")
    parser.add_argument("module", help="job module, e.g. spark_jobs.bronze_ingest")
    parser.add_argument("job_args", nargs=argparse.REMAINDER)
    args = parser.parse_args()
    job = importlib.import_module(args.module)
    started = time.perf_counter()
    with lineage.job_run(args.module.rsplit(".", 1)[-1]):
        result = job.main(args.job_args)
    seconds = time.perf_counter() - started
    args.summary.write_text(json.dumps({"result": result, "seconds_in_main": seconds}, default=str))


if __name__ == "__main__":
    sys.exit(main())
