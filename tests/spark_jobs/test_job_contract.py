"""The job contract (fhir_contract) and the jobs agree: each job's argument parser takes
exactly the arguments the contract lists, and a command line the contract builds parses
back to the values it was built from."""

from __future__ import annotations

import datetime as dt
import importlib

import pytest

from fhir_contract import JOB_ARGUMENTS, job_command_line

# One valid value per argument (as tasks pass them: strings or templates rendered to strings).
VALUES = {
    "landing": "/landing",
    "lakehouse": "/lakehouse",
    "run_date": "2026-11-20",
    "run_id": "scheduled__2026-11-20T06:00:00+00:00",
    "landing_prefix": "late/2026-11-20/",
    "force": True,
    "lookback_days": "3",
    "views_folder": "/views",
    "as_of": "2026-11-20",
    "trend_days": "30",
    "thresholds": "/quality.yaml",
    "tracking_uri": "sqlite:////mlflow.db",
    "horizon_days": "180",
    "artifact_root": "/artifacts",
    "seed": "7",
    "min_rows": "5",
    "models": ["fhir_diabetes_risk"],
    "page_after_retrain_skips": "3",
    "summary_out": "/lakehouse/_job_summaries/train_models/run.json",
    "drift_threshold": "0.3",
    "drift_min_rows": "50",
    "model": ["fhir_diabetes_risk", "fhir_readmission_30d"],
    "subscription_id": "sub",
    "resource_group": "rg",
    "workspace": "ws",
    "instance_type": "Standard_DS3_v2",
    "instance_count": "2",
    "retention_hours": "200",
    "source": "files",
    "checkpoint": "/checkpoint",
    "status_file": "/status.json",
    "query_name": "q",
    "trigger_seconds": "0.5",
    "max_files_per_trigger": "10",
    "max_records_per_trigger": "1000",
    "kafka_bootstrap": "ns.servicebus.windows.net:9093",
    "kafka_topic": "fhir",
    "kafka_starting_offsets": "latest",
    "kafka_sasl": True,
}


def _as_parsed(value):
    """What argparse gives back for a value (compared as text: each job types its own)."""
    if isinstance(value, list):
        return [str(v) for v in value]
    if isinstance(value, dt.date):
        return value.isoformat()
    return value if isinstance(value, bool) else str(value)


@pytest.mark.parametrize("job", sorted(JOB_ARGUMENTS))
def test_each_job_parses_exactly_the_contract_arguments(job):
    module = importlib.import_module(f"spark_jobs.{job}")
    arguments = {name: VALUES[name] for name in JOB_ARGUMENTS[job]}
    parsed = vars(module.parse_args(job_command_line(job, **arguments)))
    assert set(parsed) == JOB_ARGUMENTS[job]
    assert {name: _as_parsed(value) for name, value in parsed.items()} == {
        name: _as_parsed(value) for name, value in arguments.items()
    }


def test_a_task_naming_an_argument_the_job_lacks_fails_when_the_dag_is_built():
    with pytest.raises(ValueError, match=r"silver_normalize takes no \['as_of'\]"):
        job_command_line("silver_normalize", lakehouse="/l", as_of="2026-11-20")
    with pytest.raises(ValueError, match="unknown Spark job 'gold'"):
        job_command_line("gold", lakehouse="/l")


def test_flags_and_empty_values():
    assert job_command_line("bronze_ingest", lakehouse="/l", force=True, landing_prefix=None) == [
        "--lakehouse",
        "/l",
        "--force",
    ]
    assert job_command_line("bronze_ingest", force=False) == []
