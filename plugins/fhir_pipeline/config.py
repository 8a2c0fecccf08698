"""Pipeline settings: include/config/pipeline.yaml, overridden by the environment,
validated into one typed model (`PipelineSettings`, one model per section).

Precedence, lowest first:

1. include/config/pipeline.yaml: the source of every default. The models carry no
   defaults of their own, so every key must be in the file, and a key the models do
   not know is an error (a misspelt key fails instead of being ignored).
2. The environment: FHIR__<SECTION>__<KEY> replaces that one key of the file, e.g.
   FHIR__COMPUTE__BACKEND=databricks. The value is read as a comma-separated list for
   a list key (FHIR__ALERTS__CHANNELS=slack,pagerduty), else as JSON when it parses
   (FHIR__RETRIES__RETRIES=5, FHIR__STREAMING__DATABRICKS_JOB_ID=null,
   FHIR__COMPUTE__SPARK_CONF='{"spark.sql.shuffle.partitions": "8"}'), else as a
   plain string. A variable naming no key of the file is an error that names it.

The merged values are then validated as a whole: every problem, with its key's
dotted path (and the variable when the value came from the environment), is
reported in one `ConfigError`. FHIR_LANDING_URI, FHIR_LAKEHOUSE_URI and
MLFLOW_TRACKING_URI give the storage roots (`storage()`), as for the Spark jobs.

Read at DAG parse time (`settings()`, parsed once per process): cheap (one small
YAML file, no network), and a bad setting fails parsing every DAG with the message.
A plain pydantic model validated from the merged dict, not pydantic-settings: the
override syntax above (comma lists, unknown variables as errors) would need a
custom source there anyway.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import typing
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationError,
    field_validator,
    model_validator,
)

REPO_ROOT = Path(__file__).resolve().parents[2]
PIPELINE_CONFIG = REPO_ROOT / "include" / "config" / "pipeline.yaml"
ENV_PREFIX = "FHIR__"


class ConfigError(ValueError):
    """The pipeline configuration is unusable; retrying cannot help."""


# Field types -------------------------------------------------------------------------

Text = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1)]  # non-empty
Cron = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1)]  # cron or @preset, UTC
# Durations: positive and finite (JSON overrides could say Infinity or NaN).
Minutes = Annotated[float, Field(gt=0, allow_inf_nan=False)]
Seconds = Annotated[float, Field(gt=0, allow_inf_nan=False)]
Channel = Literal["log", "slack", "pagerduty", "email"]
Backend = Literal["spark_submit", "job_server", "databricks"]


def _utc(value: dt.datetime) -> dt.datetime:
    return value if value.tzinfo else value.replace(tzinfo=dt.UTC)


def _spark_value(value: Any) -> Any:
    # spark.x.enabled: true (unquoted in YAML) means the Spark value "true", not "True".
    return str(value).lower() if isinstance(value, bool) else value


UtcDatetime = Annotated[dt.datetime, AfterValidator(_utc)]  # "2026-11-01": midnight UTC
SparkConf = dict[str, Annotated[str, BeforeValidator(_spark_value)]]


class Section(BaseModel):
    # Numbers are accepted for strings (FHIR__STREAMING__KAFKA_TOPIC=2024 parses as JSON 2024).
    model_config = ConfigDict(extra="forbid", frozen=True, coerce_numbers_to_str=True)


# Sections ----------------------------------------------------------------------------


class BatchSettings(Section):
    schedule: Cron
    start_date: UtcDatetime
    max_active_runs: int = Field(ge=1)
    deadline_after_queued_minutes: Minutes
    deadline_after_logical_date_minutes: Minutes
    default_lookback_days: int = Field(ge=1, le=60)  # the trigger form's bounds


class ViewsSettings(Section):
    extra_folder: str  # a folder URI, or empty for none


class LandingSettings(Section):
    wasb_conn_id: Text
    fs_conn_id: Text
    sensor_poke_seconds: Seconds
    sensor_timeout_minutes: Minutes


class RetriesSettings(Section):
    retries: int = Field(ge=2)  # the DAG policy's minimum (dag_policy.MIN_RETRIES)
    retry_delay_seconds: Seconds
    backoff_multiplier: float = Field(ge=1, allow_inf_nan=False)
    max_retry_delay_minutes: Minutes


class AlertsSettings(Section):
    channels: list[Channel]
    log_path: Text  # the log channel, and every page's fallback
    slack_conn_id: Text
    pagerduty_conn_id: Text
    smtp_conn_id: Text
    email_to: list[Text]

    @model_validator(mode="after")
    def _email_has_recipients(self) -> AlertsSettings:
        if "email" in self.channels and not self.email_to:
            raise ValueError("channel email needs at least one address in email_to")
        return self


class ComputeSettings(Section):
    backend: Backend
    spark_conn_id: Text
    spark_conf: SparkConf
    archives: list[Text]
    job_server_url: Text
    databricks_conn_id: Text
    databricks_cluster_spec: Text  # relative to the repository root
    databricks_jobs_root: Text
    databricks_polling_seconds: Seconds


class MlSettings(Section):
    schedule: Cron
    page_after_retrain_skips: int = Field(ge=1)
    min_labelled_rows: int = Field(ge=1)
    drift_psi_threshold: float = Field(gt=0)
    drift_min_rows: int = Field(ge=1)


class StreamingSettings(Section):
    schedule_minutes: Minutes
    source: Literal["files", "kafka"]
    trigger_seconds: Seconds
    max_files_per_trigger: int = Field(ge=1)
    max_records_per_trigger: int = Field(ge=1)
    state_dir: str  # empty: .local/stream
    stale_after_minutes: Minutes
    max_backlog_records: int = Field(ge=0)
    max_restarts_per_hour: int = Field(ge=1)
    kafka_bootstrap: str
    kafka_topic: str
    kafka_sasl: bool
    databricks_job_id: Annotated[int, Field(ge=1)] | None  # backend databricks: the job running stream_ingest

    @model_validator(mode="after")
    def _kafka_is_addressed(self) -> StreamingSettings:
        if self.source == "kafka" and not (self.kafka_bootstrap.strip() and self.kafka_topic.strip()):
            raise ValueError("source kafka needs kafka_bootstrap and kafka_topic")
        return self


class MaintenanceSettings(Section):
    schedule: Cron
    vacuum_retention_hours: int = Field(ge=168)  # the job refuses less (time travel, readers)


class PipelineSettings(Section):
    """include/config/pipeline.yaml, with the environment's overrides."""

    owner: Text
    batch: BatchSettings
    views: ViewsSettings
    landing: LandingSettings
    retries: RetriesSettings
    timeouts: dict[str, Minutes]  # execution_timeout per task id; `default` for the others
    alerts: AlertsSettings
    compute: ComputeSettings
    ml: MlSettings
    streaming: StreamingSettings
    maintenance: MaintenanceSettings

    @field_validator("timeouts")
    @classmethod
    def _has_default(cls, value: dict[str, float]) -> dict[str, float]:
        if "default" not in value:
            raise ValueError("needs a `default` (minutes for tasks not listed)")
        return value

    def timeout_minutes(self, task: str) -> float:
        return self.timeouts.get(task, self.timeouts["default"])


# Loading -----------------------------------------------------------------------------


def _is_list_key(section: str, key: str, current: Any) -> bool:
    field = PipelineSettings.model_fields.get(section)
    model = field.annotation if field else None
    if isinstance(model, type) and issubclass(model, BaseModel) and key in model.model_fields:
        return typing.get_origin(model.model_fields[key].annotation) is list
    return isinstance(current, list)  # a key the model does not know: fails validation anyway


def _override(raw: str, is_list: bool) -> Any:
    if is_list:
        return [item.strip() for item in raw.split(",") if item.strip()]
    try:
        return json.loads(raw)
    except json.JSONDecodeError:
        return raw


def _describe(error: dict[str, Any], variables: dict[tuple[str, str], str]) -> str:
    path = ".".join(str(part) for part in error["loc"])
    message = error["msg"].removeprefix("Value error, ")  # a check of ours: its own words
    if error["type"] == "extra_forbidden":
        message = "not a setting (unknown key)"
    notes = []
    if error["type"] != "missing" and isinstance(error["input"], str | int | float | bool | None):
        notes.append(f"got {error['input']!r}")
    # A key's own error names its variable; a check across a section's keys names them all.
    scope = tuple(error["loc"][:2])
    notes += [f"from {name}" for where, name in variables.items() if where[: len(scope)] == scope]
    return f"{path}: {message}" + (f" ({', '.join(notes)})" if notes else "")


def load_settings(
    path: Path = PIPELINE_CONFIG, environ: typing.Mapping[str, str] | None = None
) -> PipelineSettings:
    """The settings in `path` with the overrides in `environ` (default: os.environ), validated."""
    env = os.environ if environ is None else environ
    try:
        values = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as exc:
        raise ConfigError(f"cannot read pipeline settings {path}: {exc}") from exc
    if not isinstance(values, dict):
        raise ConfigError(f"pipeline settings {path} must be a mapping of sections")

    variables: dict[tuple[str, str], str] = {}  # (section, key) -> the variable that set it
    unknown = []
    for name in sorted(env):
        if not name.startswith(ENV_PREFIX):
            continue
        parts = name[len(ENV_PREFIX) :].lower().split("__")
        section = values.get(parts[0]) if len(parts) == 2 else None
        if not isinstance(section, dict) or parts[1] not in section:
            unknown.append(f"{name}: no setting {'.'.join(parts)} in {path.name}")
            continue
        key = parts[1]
        section[key] = _override(env[name], _is_list_key(parts[0], key, section[key]))
        variables[(parts[0], key)] = name
    if unknown:
        raise ConfigError("; ".join(unknown))

    try:
        return PipelineSettings.model_validate(values)
    except ValidationError as exc:
        problems = [_describe(error, variables) for error in exc.errors()]
        raise ConfigError(f"invalid pipeline settings ({path.name}): " + "; ".join(problems)) from None


@cache
def settings() -> PipelineSettings:
    """The settings for this process (parsed once)."""
    return load_settings()


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
