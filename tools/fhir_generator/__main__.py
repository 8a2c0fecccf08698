"""Command line entry point: ``python -m tools.fhir_generator --help``."""

from __future__ import annotations

import argparse
import sys
import time

from .output import default_workers, generate


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m tools.fhir_generator",
        description="Write a deterministic synthetic FHIR R4 extract to "
        "OUT/daily_extract/DATE/ (see tools/fhir_generator/__init__.py).",
    )
    parser.add_argument("--patients", type=int, required=True)
    parser.add_argument("--seed", type=int, required=True)
    parser.add_argument("--out", required=True, help="landing root folder")
    parser.add_argument("--date", required=True, help="extract date YYYY-MM-DD (inclusive)")
    parser.add_argument(
        "--history-days",
        type=int,
        default=730,
        help="window length in days ending with DATE (default 730)",
    )
    parser.add_argument(
        "--workers",
        type=int,
        default=default_workers(),
        help="worker processes (default min(2, CPUs))",
    )
    parser.add_argument(
        "--bundle-fraction",
        type=float,
        default=0.02,
        help="share of patients written as transaction Bundles (default 0.02)",
    )
    parser.add_argument("--gzip", action="store_true", help="write .ndjson.gz files")
    parser.add_argument(
        "--overwrite",
        action="store_true",
        help="replace the generator's files already in the date folder",
    )
    args = parser.parse_args(argv)

    started = time.perf_counter()
    try:
        counts = generate(
            args.patients,
            args.seed,
            args.out,
            args.date,
            history_days=args.history_days,
            workers=args.workers,
            bundle_fraction=args.bundle_fraction,
            gzip=args.gzip,
            overwrite=args.overwrite,
            progress=True,
        )
    except (ValueError, FileExistsError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    seconds = time.perf_counter() - started
    total = sum(counts.values())
    per_type = " ".join(f"{name}={count}" for name, count in counts.items())
    print(f"{per_type} total={total} seconds={seconds:.1f} resources_per_second={total / seconds:.0f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
