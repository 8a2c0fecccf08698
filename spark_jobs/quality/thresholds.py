"""The quality gate's thresholds (include/config/quality.yaml), validated when loaded:
an unknown or missing key, a share outside [0, 1] or a negative row count is an error
naming its dotted path, before any table is read."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import yaml

from spark_jobs.codesets import include_path
from spark_jobs.lakehouse import PermanentJobError


class ThresholdsError(PermanentJobError):
    """The thresholds file is unusable."""


@dataclass(frozen=True)
class BronzeThresholds:
    max_quarantine_share: float  # quarantined / read, for the run date
    min_records_read: int


@dataclass(frozen=True)
class SilverThresholds:
    min_rows: dict[str, int]  # table -> rows after the run
    max_invalid_share: dict[str, float]  # table -> rows with quality issues / rows


@dataclass(frozen=True)
class GoldThresholds:
    min_rows: dict[str, int]  # table -> rows in the as-of slice
    max_null_share: dict[str, dict[str, float]]  # table -> column -> null share in the slice


@dataclass(frozen=True)
class QualityThresholds:
    bronze: BronzeThresholds
    silver: SilverThresholds
    gold: GoldThresholds


def _keys(raw, expected: set[str], where: str) -> dict:
    if not isinstance(raw, dict):
        raise ThresholdsError(f"{where}: expected a mapping, got {raw!r}")
    unknown, missing = set(raw) - expected, expected - set(raw)
    if unknown or missing:
        raise ThresholdsError(f"{where}: unknown keys {sorted(unknown)}, missing keys {sorted(missing)}")
    return raw


def _mapping(raw, where: str) -> dict:
    if not isinstance(raw, dict):
        raise ThresholdsError(f"{where}: expected a mapping of table names, got {raw!r}")
    return raw


def _share(value, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value <= 1:
        raise ThresholdsError(f"{where}: expected a share in [0, 1], got {value!r}")
    return float(value)


def _count(value, where: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ThresholdsError(f"{where}: expected a row count >= 0, got {value!r}")
    return value


def parse_thresholds(raw) -> QualityThresholds:
    layers = _keys(raw, {"bronze", "silver", "gold"}, "quality thresholds")
    bronze = _keys(layers["bronze"], {"max_quarantine_share", "min_records_read"}, "bronze")
    silver = _keys(layers["silver"], {"min_rows", "max_invalid_share"}, "silver")
    gold = _keys(layers["gold"], {"min_rows", "max_null_share"}, "gold")

    def counts(section: dict, where: str) -> dict[str, int]:
        return {t: _count(v, f"{where}.{t}") for t, v in _mapping(section, where).items()}

    def shares(section: dict, where: str) -> dict[str, float]:
        return {t: _share(v, f"{where}.{t}") for t, v in _mapping(section, where).items()}

    return QualityThresholds(
        bronze=BronzeThresholds(
            max_quarantine_share=_share(bronze["max_quarantine_share"], "bronze.max_quarantine_share"),
            min_records_read=_count(bronze["min_records_read"], "bronze.min_records_read"),
        ),
        silver=SilverThresholds(
            min_rows=counts(silver["min_rows"], "silver.min_rows"),
            max_invalid_share=shares(silver["max_invalid_share"], "silver.max_invalid_share"),
        ),
        gold=GoldThresholds(
            min_rows=counts(gold["min_rows"], "gold.min_rows"),
            max_null_share={
                table: shares(columns, f"gold.max_null_share.{table}")
                for table, columns in _mapping(gold["max_null_share"], "gold.max_null_share").items()
            },
        ),
    )


def load_thresholds(path: str | Path | None = None) -> QualityThresholds:
    source = Path(path) if path else include_path("config", "quality.yaml")
    try:
        raw = yaml.safe_load(source.read_text())
    except (OSError, yaml.YAMLError) as exc:
        raise ThresholdsError(f"cannot read quality thresholds {source}: {exc}") from exc
    try:
        return parse_thresholds(raw)
    except ThresholdsError as exc:
        raise ThresholdsError(f"{source}: {exc}") from None
