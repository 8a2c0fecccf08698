"""Helpers for tests that run the Spark jobs on a temporary landing/lakehouse."""

from __future__ import annotations

import datetime as dt
import shutil
from pathlib import Path

from spark_jobs import bronze_ingest, silver_normalize

TEST_PHI_KEY = b"test-phi-key-not-a-secret-0123456789"

RUN_DATE = dt.date(2026, 11, 20)


def landing_with(root: Path, run_date: dt.date, *sources: Path) -> Path:
    folder = root / "daily_extract" / run_date.isoformat()
    folder.mkdir(parents=True, exist_ok=True)
    for source in sources:
        for path in sorted(source.iterdir()):
            if path.suffix in {".json", ".ndjson"}:
                shutil.copy(path, folder / path.name)
    return root


def ingest(spark, landing: Path, lakehouse: Path, run_date: dt.date = RUN_DATE, *extra: str) -> dict:
    args = bronze_ingest.parse_args(
        [
            "--landing",
            str(landing),
            "--lakehouse",
            str(lakehouse),
            "--run-date",
            run_date.isoformat(),
            "--run-id",
            f"test__{run_date}",
            *extra,
        ]
    )
    return bronze_ingest.run(spark, args)


def normalize(
    spark,
    lakehouse: Path,
    run_date: dt.date = RUN_DATE,
    lookback_days: int = 1,
    views_folder: str | None = None,
) -> dict:
    args = silver_normalize.parse_args(
        [
            "--lakehouse",
            str(lakehouse),
            "--run-date",
            run_date.isoformat(),
            "--lookback-days",
            str(lookback_days),
            *(["--views-folder", views_folder] if views_folder else []),
        ]
    )
    return silver_normalize.run(spark, args, TEST_PHI_KEY)
