"""Helpers for tests that run the Spark jobs on a temporary landing/lakehouse."""

from __future__ import annotations

import datetime as dt
import shutil
from pathlib import Path

from spark_jobs.bronze import job as bronze
from spark_jobs.silver import job as silver

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


def ingest(spark, landing: Path, lakehouse: Path, run_date: dt.date = RUN_DATE, **options) -> dict:
    return bronze.run(
        spark,
        landing=str(landing),
        lakehouse=str(lakehouse),
        run_date=run_date,
        run_id=f"test__{run_date}",
        **options,
    )


def normalize(
    spark,
    lakehouse: Path,
    run_date: dt.date = RUN_DATE,
    lookback_days: int = 1,
    views_folder: str | None = None,
) -> dict:
    return silver.run(
        spark,
        lakehouse=str(lakehouse),
        run_date=run_date,
        phi_key=TEST_PHI_KEY,
        lookback_days=lookback_days,
        views_folder=views_folder,
    )
