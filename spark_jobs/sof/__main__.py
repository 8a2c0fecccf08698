"""SQL on FHIR v2 ViewDefinitions on Spark.

  python -m spark_jobs.sof test <folder of official test files> [--report FILE]
  python -m spark_jobs.sof run --view V.json --source <NDJSON folder | lakehouse root>
                               --out <uri> [--format delta|parquet|csv]

`test` runs every case of the official conformance format and writes the report the
implementations table reads; its last line is "N passed, M failed". `run` checks the
view (FHIRPath, R4 elements, PHI policy) before reading anything, then materializes
it from NDJSON files or from bronze (`<root>/bronze/fhir_raw`).
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from pathlib import Path

from spark_jobs import phi
from spark_jobs.lakehouse import PermanentJobError, configure_logging, run_job
from spark_jobs.session import build_spark_session
from spark_jobs.sof import phi_policy
from spark_jobs.sof.compiler import ViewCompileError
from spark_jobs.sof.source import read_resources
from spark_jobs.sof.view import DEFAULT_REPEAT_DEPTH, compile_view, view_rows

log = logging.getLogger("fhir_views")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m spark_jobs.sof", description=__doc__.split("\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    test = commands.add_parser("test", help="run the official conformance test files in a folder")
    test.add_argument("folder", type=Path)
    test.add_argument("--report", type=Path, help="write the conformance report (JSON) here")
    run = commands.add_parser("run", help="materialize one view")
    run.add_argument("--view", required=True, type=Path, help="ViewDefinition JSON file")
    run.add_argument("--source", required=True, help="folder of FHIR NDJSON files, or a lakehouse root")
    run.add_argument("--out", required=True, help="output URI")
    run.add_argument("--format", choices=("delta", "parquet", "csv"), default="delta")
    run.add_argument(
        "--repeat-depth", type=int, default=DEFAULT_REPEAT_DEPTH, help="deepest `repeat` nesting read"
    )
    return parser.parse_args(argv)


def load_view(path: Path) -> dict:
    try:
        return json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise PermanentJobError(f"{path}: not a readable JSON ViewDefinition ({exc})") from None


def run_tests(args: argparse.Namespace) -> int:
    from spark_jobs.sof.conformance import run_suite, summary

    spark = build_spark_session("fhir-views-conformance", {"spark.ui.enabled": "false"})
    report = run_suite(spark, args.folder)
    if args.report:
        args.report.write_text(json.dumps(report, indent=2) + "\n")
    passed, failed = summary(report)
    print(f"{passed} passed, {failed} failed")
    return 0 if failed == 0 else 1


def run_view(args: argparse.Namespace) -> dict:
    view = load_view(args.view)
    key = phi.load_phi_key()
    spark = build_spark_session("fhir-view")  # Spark expressions need a session to be built
    hash_id = phi.hasher(key)
    try:
        compiled = compile_view(view, repeat_depth=args.repeat_depth)
        phi_policy.check(compiled)
    except ViewCompileError as exc:
        raise PermanentJobError(f"{args.view}: {exc}") from None
    started = time.perf_counter()
    log.info("view %s (%s): reading %s", view.get("name", args.view.name), compiled.resource, args.source)
    resources, all_of_type = read_resources(spark, args.source, compiled.resource)
    rows = view_rows(resources, compiled, all_of_type=all_of_type)
    rows = phi_policy.hash_patient_keys(rows, compiled, hash_id)
    writer = rows.write.format(args.format).mode("overwrite")
    if args.format == "delta":
        writer = writer.option("overwriteSchema", "true")
    elif args.format == "csv":
        writer = writer.option("header", "true")
    writer.save(args.out)
    count = spark.read.format(args.format).options(header="true").load(args.out).count()
    summary = {
        "view": view.get("name"),
        "rows": count,
        "out": args.out,
        "seconds": round(time.perf_counter() - started, 1),
    }
    log.info("view %s: %d rows written to %s in %.1f s", summary["view"], count, args.out, summary["seconds"])
    return summary


def main(argv: list[str] | None = None) -> None:
    configure_logging()
    args = parse_args(argv)
    if args.command == "test":
        sys.exit(run_tests(args))
    run_view(args)


if __name__ == "__main__":
    run_job(main)
