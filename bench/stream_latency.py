"""Streaming write-to-commit latency of spark_jobs.stream_ingest (files source).

    python -m bench.stream_latency [--events 40] [--warmup 10] [--interval 1.5] [--trigger-seconds 1]

Starts the real streaming job on a scratch lakehouse, writes one NDJSON file per
event into <landing>/stream/ (atomically: write hidden, then rename) at a steady
pace (the first --warmup of them not counted), and waits until every record is in
bronze/fhir_raw. Latency of a record = the timestamp of the Delta commit that added
it to fhir_raw (commitInfo in the _delta_log) minus the moment its file became
visible. Prints p50/p95/max and writes bench/results/<date>-stream-latency.json.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from urllib.parse import unquote

import pyarrow.parquet as pq
from fhir_pipeline import config, streaming

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "bench" / "results"


def commits_by_resource(table: Path) -> dict[str, float]:
    """resource_id -> commit time (epoch seconds) of the fhir_raw version that added it."""
    committed: dict[str, float] = {}
    for entry in sorted((table / "_delta_log").glob("*.json")):
        actions = [json.loads(line) for line in entry.read_text().splitlines() if line.strip()]
        commit_ms = next(a["commitInfo"]["timestamp"] for a in actions if "commitInfo" in a)
        for action in actions:
            if "add" in action:
                ids = pq.read_table(table / unquote(action["add"]["path"]), columns=["resource_id"])
                for resource_id in ids.column("resource_id").to_pylist():
                    committed.setdefault(resource_id, commit_ms / 1000)
    return committed


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def wait_for(condition, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what} not reached after {timeout:.0f}s")
        time.sleep(0.2)


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--events", type=int, default=40, help="files written, one record each")
    parser.add_argument("--interval", type=float, default=1.5, help="seconds between files")
    parser.add_argument("--trigger-seconds", type=float, default=1.0)
    parser.add_argument("--warmup", type=int, default=10, help="events written first and not counted")
    args = parser.parse_args(argv)

    root = Path(tempfile.mkdtemp(prefix="fhir-stream-bench-"))
    landing, lakehouse, state = root / "landing", root / "lakehouse", root / "state"
    (landing / "stream").mkdir(parents=True)
    state.mkdir()
    # The command line the stream supervisor runs, from the same settings.
    os.environ.update(
        {
            "FHIR_LANDING_URI": str(landing),
            "FHIR_LAKEHOUSE_URI": str(lakehouse),
            "FHIR__STREAMING__SOURCE": "files",
            "FHIR__STREAMING__STATE_DIR": str(state),
            "FHIR__STREAMING__TRIGGER_SECONDS": str(args.trigger_seconds),
        }
    )
    config.settings.cache_clear()
    paths = streaming.stream_paths()
    status_file = paths.status_file
    command = [sys.executable, "-m", "spark_jobs.stream_ingest", *streaming.job_arguments(paths)]
    log_path = state / "stream_ingest.log"
    with open(log_path, "w") as log:
        job = subprocess.Popen(
            command, cwd=REPO, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
    fhir_raw = lakehouse / "bronze" / "fhir_raw"
    visible_at: dict[str, float] = {}
    try:
        print(f"starting the stream (log: {log_path})", flush=True)
        wait_for(status_file.exists, 300, "stream start")
        # The first micro-batches of a fresh JVM are slow (class loading, JIT, the first
        # Delta snapshots); a production stream runs for hours, so the first --warmup
        # events go through at the same pace but are not counted.
        for i in range(args.warmup + args.events):
            resource_id = f"warmup-{i}" if i < args.warmup else f"lat-{i - args.warmup}"
            path = landing / "stream" / f"event-{i:05d}.ndjson"
            hidden = path.with_name(f".{path.name}.tmp")
            hidden.write_text(json.dumps({"resourceType": "Patient", "id": resource_id}) + "\n")
            hidden.rename(path)
            if i >= args.warmup:
                visible_at[resource_id] = time.time()
            print(f"\rwritten {i + 1}/{args.warmup + args.events}", end="", flush=True)
            time.sleep(args.interval)
        print(flush=True)
        wait_for(
            lambda: visible_at.keys() <= commits_by_resource(fhir_raw).keys(), 300, "all records committed"
        )
    finally:
        os.killpg(job.pid, signal.SIGTERM)
        job.wait(timeout=60)

    committed = commits_by_resource(fhir_raw)
    latencies = [committed[rid] - written for rid, written in visible_at.items()]
    result = {
        "benchmark": "stream_write_to_commit_latency",
        "date": dt.date.today().isoformat(),
        "events": args.events,
        "warmup_events": args.warmup,
        "interval_seconds": args.interval,
        "trigger_seconds": args.trigger_seconds,
        "p50_seconds": round(statistics.median(latencies), 2),
        "p95_seconds": round(percentile(latencies, 0.95), 2),
        "max_seconds": round(max(latencies), 2),
        "cpu_count": os.cpu_count(),
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    out = RESULTS / f"{result['date']}-stream-latency.json"
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))
    print(f"written {out}")
    return result


if __name__ == "__main__":
    main()
