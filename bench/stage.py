"""Run one pipeline job the way an Airflow task does (its own process and JVM) and
write what it returned as JSON, for the benchmark harness:

    python -m bench.stage --summary OUT.json spark_jobs.silver_normalize --lakehouse ...
"""

from __future__ import annotations

import argparse
import importlib
import json
import sys
import time
from pathlib import Path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--summary", required=True, type=Path, help="JSON file to write")
    parser.add_argument("module", help="job module, e.g. spark_jobs.bronze_ingest")
    parser.add_argument("job_args", nargs=argparse.REMAINDER)
    args = parser.parse_args()
    job = importlib.import_module(args.module)
    started = time.perf_counter()
    result = job.main(args.job_args)
    seconds = time.perf_counter() - started
    args.summary.write_text(json.dumps({"result": result, "seconds_in_main": seconds}, default=str))


if __name__ == "__main__":
    sys.exit(main())
