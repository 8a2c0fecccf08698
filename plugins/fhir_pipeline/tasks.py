"""What every DAG of this repository shares: default task arguments (owner,
retries with capped exponential backoff, timeouts, the failure page, the retry
policy), the landing sensor, the gold Asset and the run-date template."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from fhir_contract import layer_path
from fhir_pipeline.alerts import page_on_call
from fhir_pipeline.compute import PermanentJobFailure
from fhir_pipeline.config import ConfigError, settings, storage

# The day a run processes: its logical date, or, for a manual run triggered
# without one, the day it was triggered.
_RUN_DAY = "(dag_run.logical_date or dag_run.run_after).strftime('%Y-%m-%d')"
RUN_DATE = "{{ " + _RUN_DAY + " }}"
# Where that day's extract is, under the landing root (the trigger form can override it).
LANDING_PREFIX = "{{ params.landing_prefix or ('daily_extract/' ~ " + _RUN_DAY + " ~ '/') }}"


def gold_asset():
    from airflow.sdk import Asset

    gold = layer_path(storage().lakehouse_uri, "gold")
    uri = gold if "://" in gold else f"file://{gold}"
    return Asset(name="fhir_gold", uri=uri)


def gold_event_as_of(triggering_asset_events) -> str:
    """The as-of date to train on: the newest one the gold Asset events that triggered
    this run carry (publish_gold puts it in their extra), else "latest" (a scheduled run)."""
    dates = [
        event.extra["as_of"]
        for events in triggering_asset_events.values()
        for event in events
        if (event.extra or {}).get("as_of")
    ]
    return max(dates, default="latest")


def timeout(task: str) -> timedelta:
    return timedelta(minutes=settings().timeout_minutes(task))


def retry_policy():
    """Errors a retry cannot fix fail at once; everything else retries with backoff."""
    from airflow.sdk import ExceptionRetryPolicy, RetryAction, RetryRule

    return ExceptionRetryPolicy(
        rules=[
            RetryRule(
                exception=[PermanentJobFailure, ConfigError],
                action=RetryAction.FAIL,
                reason="bad input or configuration: retrying cannot succeed",
            )
        ]
    )


def default_task_args() -> dict[str, Any]:
    retries = settings().retries
    return {
        "owner": settings().owner,
        "retries": retries.retries,
        "retry_delay": timedelta(seconds=retries.retry_delay_seconds),
        "retry_exponential_backoff": float(retries.backoff_multiplier),
        "max_retry_delay": timedelta(minutes=retries.max_retry_delay_minutes),
        "execution_timeout": timeout("default"),
        "retry_policy": retry_policy(),
        "on_failure_callback": page_on_call,
    }


AZURE_SCHEMES = ("wasb", "wasbs", "abfs", "abfss")


def azure_location(uri: str) -> tuple[str, str] | None:
    """(container, path in it) of an Azure storage URI, None for a local path."""
    from urllib.parse import urlsplit

    parts = urlsplit(uri)
    if parts.scheme not in AZURE_SCHEMES:
        return None
    return parts.netloc.split("@", 1)[0], parts.path.strip("/")


def landing_sensor(task_id: str, prefix: str):
    """Wait, deferred in the triggerer, for files under <landing>/<prefix>: a
    WasbPrefixSensor when the landing URI is Azure storage, else a folder sensor."""
    landing = settings().landing
    common = {
        "task_id": task_id,
        "deferrable": True,
        "poke_interval": landing.sensor_poke_seconds,
        "timeout": landing.sensor_timeout_minutes * 60,
        "execution_timeout": timeout("sensor"),
    }
    root = storage().landing_uri.rstrip("/")
    azure = azure_location(root)
    if azure:
        from airflow.providers.microsoft.azure.sensors.wasb import WasbPrefixSensor

        container, base = azure
        return WasbPrefixSensor(
            container_name=container,
            prefix=f"{base}/{prefix}".lstrip("/"),
            wasb_conn_id=landing.wasb_conn_id,
            **common,
        )
    from airflow.providers.standard.sensors.filesystem import FileSensor

    return FileSensor(filepath=f"{root}/{prefix}", fs_conn_id=landing.fs_conn_id, recursive=True, **common)
