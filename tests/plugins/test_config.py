"""Pipeline settings: the shipped pipeline.yaml validates, FHIR__<SECTION>__<KEY>
overrides one key (JSON, a comma list for list keys, else a plain string), and every
bad or unknown setting is a ConfigError naming its key (and its variable)."""

from __future__ import annotations

import datetime as dt

import pytest
import yaml
from fhir_pipeline.config import PIPELINE_CONFIG, ConfigError, PipelineSettings, load_settings


def yaml_with(tmp_path, change) -> object:
    """A copy of the shipped pipeline.yaml, edited by `change(values)`."""
    values = yaml.safe_load(PIPELINE_CONFIG.read_text())
    change(values)
    path = tmp_path / "pipeline.yaml"
    path.write_text(yaml.safe_dump(values))
    return path


def test_the_shipped_settings_validate():
    values = load_settings(environ={})
    assert isinstance(values, PipelineSettings)
    assert values.compute.backend == "spark_submit"
    assert values.alerts.channels == ["log"]
    assert values.batch.start_date == dt.datetime(2026, 11, 1, tzinfo=dt.UTC)
    assert values.timeout_minutes("bronze_ingest") == 60
    assert values.timeout_minutes("a_task_with_no_timeout_of_its_own") == values.timeouts["default"]


def test_other_variables_are_ignored():
    assert load_settings(environ={"FHIR_LANDING_URI": "/x", "PATH": "/bin"}) == load_settings(environ={})


def test_each_kind_of_override():
    values = load_settings(
        environ={
            "FHIR__RETRIES__RETRIES": "5",  # JSON number
            "FHIR__BATCH__DEADLINE_AFTER_QUEUED_MINUTES": "0.5",
            "FHIR__STREAMING__KAFKA_SASL": "true",  # JSON boolean
            "FHIR__STREAMING__DATABRICKS_JOB_ID": "55",
            "FHIR__COMPUTE__SPARK_CONF": '{"spark.sql.shuffle.partitions": "8"}',  # JSON object
            "FHIR__ALERTS__CHANNELS": " slack, email ,",  # list key: comma-separated
            "FHIR__ALERTS__EMAIL_TO": "a@example.com",
            "FHIR__COMPUTE__JOB_SERVER_URL": "http://127.0.0.1:9000",  # not JSON: plain string
            "FHIR__VIEWS__EXTRA_FOLDER": "abfss://config@acct.dfs.core.windows.net/views",
            "FHIR__STREAMING__KAFKA_TOPIC": "2024",  # JSON number, for a string key
            "FHIR__TIMEOUTS__BRONZE_INGEST": "15",
        }
    )
    assert values.retries.retries == 5
    assert values.batch.deadline_after_queued_minutes == 0.5
    assert values.streaming.kafka_sasl is True
    assert values.streaming.databricks_job_id == 55
    assert values.compute.spark_conf == {"spark.sql.shuffle.partitions": "8"}
    assert values.alerts.channels == ["slack", "email"]
    assert values.alerts.email_to == ["a@example.com"]
    assert values.compute.job_server_url == "http://127.0.0.1:9000"
    assert values.views.extra_folder == "abfss://config@acct.dfs.core.windows.net/views"
    assert values.streaming.kafka_topic == "2024"
    assert values.timeout_minutes("bronze_ingest") == 15


@pytest.mark.parametrize(
    "name", ["FHIR__COMPUTE__NOPE", "FHIR__NOPE__BACKEND", "FHIR__COMPUTE", "FHIR__COMPUTE__SPARK_CONF__X"]
)
def test_an_unknown_variable_is_an_error_naming_it(name):
    with pytest.raises(ConfigError, match=f"^{name}: no setting "):
        load_settings(environ={name: "x"})


def test_the_message_names_the_setting_the_variable_is_not():
    with pytest.raises(ConfigError, match="FHIR__COMPUTE__NOPE: no setting compute.nope in pipeline.yaml"):
        load_settings(environ={"FHIR__COMPUTE__NOPE": "x"})


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda v: v["compute"].update(nope=1), "compute.nope: not a setting"),
        (lambda v: v.update(extra_section={"a": 1}), "extra_section: not a setting"),
        (lambda v: v["timeouts"].pop("default"), "timeouts: needs a `default`"),
        (lambda v: v["streaming"].pop("source"), "streaming.source: Field required"),
        (lambda v: v["compute"]["spark_conf"].update({"spark.x": [1]}), r"compute.spark_conf.spark\.x: "),
    ],
)
def test_a_bad_file_is_an_error_naming_the_key(tmp_path, change, message):
    with pytest.raises(ConfigError, match=message):
        load_settings(yaml_with(tmp_path, change), environ={})


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("FHIR__RETRIES__RETRIES", "1", "retries.retries: Input should be greater than or equal to 2"),
        (
            "FHIR__COMPUTE__BACKEND",
            "emr",
            "compute.backend: Input should be 'spark_submit', 'job_server' or 'databricks'",
        ),
        ("FHIR__ALERTS__CHANNELS", "slack,carrier-pigeon", "alerts.channels.1: .*'carrier-pigeon'"),
        ("FHIR__ALERTS__LOG_PATH", '""', "alerts.log_path: "),
        ("FHIR__STREAMING__SOURCE", "kafka", "streaming: source kafka needs kafka_bootstrap and kafka_topic"),
        (
            "FHIR__STREAMING__TRIGGER_SECONDS",
            "0",
            "streaming.trigger_seconds: Input should be greater than 0",
        ),
        ("FHIR__STREAMING__MAX_FILES_PER_TRIGGER", "many", "streaming.max_files_per_trigger: .*integer"),
        ("FHIR__ML__PAGE_AFTER_RETRAIN_SKIPS", "0", "ml.page_after_retrain_skips: "),
        ("FHIR__ML__SCHEDULE", '" "', "ml.schedule: "),
        ("FHIR__BATCH__START_DATE", "tomorrow", "batch.start_date: "),
        ("FHIR__COMPUTE__SPARK_CONF", "[1]", "compute.spark_conf: .*dictionary"),
        ("FHIR__MAINTENANCE__VACUUM_RETENTION_HOURS", "24", "maintenance.vacuum_retention_hours: "),
    ],
)
def test_a_bad_override_is_an_error_naming_the_key_and_the_variable(name, value, message):
    with pytest.raises(ConfigError, match=message) as error:
        load_settings(environ={name: value})
    assert f"from {name}" in str(error.value)


def test_every_problem_is_reported_at_once():
    with pytest.raises(ConfigError) as error:
        load_settings(environ={"FHIR__RETRIES__RETRIES": "1", "FHIR__COMPUTE__BACKEND": "emr"})
    assert "retries.retries" in str(error.value)
    assert "compute.backend" in str(error.value)


def test_an_unreadable_file_is_a_config_error(tmp_path):
    with pytest.raises(ConfigError, match="cannot read pipeline settings"):
        load_settings(tmp_path / "missing.yaml", environ={})
    (tmp_path / "list.yaml").write_text("- a\n")
    with pytest.raises(ConfigError, match="must be a mapping"):
        load_settings(tmp_path / "list.yaml", environ={})
