"""Pipeline settings: include/config/pipeline.yaml, overridden by the environment.

FHIR__<SECTION>__<KEY> replaces one key (a JSON value, or a comma-separated
list for list keys, or a plain string). FHIR_LANDING_URI, FHIR_LAKEHOUSE_URI
and MLFLOW_TRACKING_URI give the storage roots, as for the Spark jobs.
Read at DAG parse time: cheap (one small YAML file, no network).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import yaml

REPO_ROOT = Path(__file__).resolve().parents[2]
PIPELINE_CONFIG = REPO_ROOT / "include" / "config" / "pipeline.yaml"
ENV_PREFIX = "FHIR__"


class ConfigError(ValueError):
    """The pipeline configuration is unusable; retrying cannot help."""


def _override(current: Any, raw: str) -> Any:
    if isinstance(current, list):
        return [item.strip() for item in raw.split(",") if item.strip()]
    try:
        return json.loads(raw)
    except json.JSONDecodeError:
        return raw


def load_settings(path: Path = PIPELINE_CONFIG, environ: dict[str, str] | None = None) -> dict[str, Any]:
    env = os.environ if environ is None else environ
    try:
        settings = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as exc:
        raise ConfigError(f"cannot read pipeline settings {path}: {exc}") from exc
    for name, raw in env.items():
        if not name.startswith(ENV_PREFIX):
            continue
        parts = name[len(ENV_PREFIX) :].lower().split("__")
        if len(parts) != 2 or parts[0] not in settings or not isinstance(settings[parts[0]], dict):
            raise ConfigError(f"{name}: no setting {'.'.join(parts)} in {path.name}")
        section, key = parts
        settings[section][key] = _override(settings[section].get(key), raw)
    return settings


@dataclass(frozen=True)
class Storage:
    landing_uri: str
    lakehouse_uri: str
    mlflow_tracking_uri: str


def storage(environ: dict[str, str] | None = None) -> Storage:
    env = os.environ if environ is None else environ
    local = REPO_ROOT / ".local"
    return Storage(
        landing_uri=env.get("FHIR_LANDING_URI", str(local / "landing")),
        lakehouse_uri=env.get("FHIR_LAKEHOUSE_URI", str(local / "lakehouse")),
        mlflow_tracking_uri=env.get("MLFLOW_TRACKING_URI", f"sqlite:///{local}/mlflow/mlflow.db"),
    )


@cache
def settings() -> dict[str, Any]:
    """The settings for this process (parsed once)."""
    values = load_settings()
    validate(values)
    return values


CHANNELS = {"log", "slack", "pagerduty", "email"}
BACKENDS = {"spark_submit", "job_server", "databricks"}


def validate(values: dict[str, Any]) -> None:
    problems = []
    if values["compute"]["backend"] not in BACKENDS:
        problems.append(f"compute.backend must be one of {sorted(BACKENDS)}")
    unknown = set(values["alerts"]["channels"]) - CHANNELS
    if unknown:
        problems.append(f"alerts.channels has unknown {sorted(unknown)}; use {sorted(CHANNELS)}")
    log_path = values["alerts"].get("log_path")
    if not isinstance(log_path, str) or not log_path.strip():
        problems.append("alerts.log_path must be a file path (the log channel, and every page's fallback)")
    if not isinstance(values["views"]["extra_folder"], str):
        problems.append("views.extra_folder must be a folder URI, or empty for none")
    if values["retries"]["retries"] < 2:
        problems.append("retries.retries must be >= 2")
    page_after = values["ml"]["page_after_retrain_skips"]
    if not isinstance(page_after, int) or page_after < 1:
        problems.append("ml.page_after_retrain_skips must be an integer >= 1")
    if problems:
        raise ConfigError("invalid pipeline settings: " + "; ".join(problems))
