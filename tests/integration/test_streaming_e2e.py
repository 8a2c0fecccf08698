"""Fault tests of the streaming path: the real job as a detached spark-submit,
killed with SIGKILL in the middle of a stream of numbered records, restarted by
the supervisor (the function the fhir_streaming_supervisor task runs); at the end
bronze holds each record exactly once. Once with files arriving in the landing
folder, once with a real Kafka broker (KRaft)."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import pytest
from fhir_pipeline import config, streaming
from pyspark.sql import functions as F

from spark_jobs.lakehouse import read_table
from tests.conftest import alert_connections
from tests.spark_jobs.test_stream_ingest import patient_lines, row_count, wait_until

pytestmark = pytest.mark.e2e

RECORDS, PER_FILE, PER_BATCH = 400, 10, 50


@pytest.fixture
def stream_settings(monkeypatch, tmp_path, http_receiver, smtp_receiver):
    """Point the supervisor at temporary folders; pages go to the local Slack receiver."""

    def apply(**streaming_overrides):
        env = {
            "FHIR_LANDING_URI": str(tmp_path / "landing"),
            "FHIR_LAKEHOUSE_URI": str(tmp_path / "lakehouse"),
            "FHIR__STREAMING__STATE_DIR": str(tmp_path / "state"),
            "FHIR__STREAMING__TRIGGER_SECONDS": "1",
            "FHIR__ALERTS__CHANNELS": "slack",
            **{f"FHIR__STREAMING__{k.upper()}": v for k, v in streaming_overrides.items()},
            **alert_connections(http_receiver, smtp_receiver),
        }
        for key, value in env.items():
            monkeypatch.setenv(key, value)
        config.settings.cache_clear()
        (tmp_path / "landing" / "stream").mkdir(parents=True, exist_ok=True)
        return tmp_path / "landing", tmp_path / "lakehouse"

    yield apply
    streaming.LocalStream(streaming.stream_paths()).stop(grace_seconds=5)
    config.settings.cache_clear()


def _kill_and_restart_mid_stream(spark, lakehouse, produce) -> list[dict]:
    """Start via the supervisor, SIGKILL the job mid-stream, let the supervisor restart it.

    `produce(first, stop)` publishes records first..stop-1; the job takes at most
    PER_BATCH records per micro-batch, so the kill lands between batches of a backlog."""
    runner = streaming.LocalStream(streaming.stream_paths())
    first = streaming.supervise()
    assert first["action"] == "restarted" and runner.alive()
    half = RECORDS // 2
    produce(0, half)
    fhir_raw = lakehouse / "bronze" / "fhir_raw"
    # The first commit to fhir_raw: a file check, so the test does not compete with the job for CPU.
    wait_until(lambda: any((fhir_raw / "_delta_log").glob("*.json")), timeout=300)
    os.killpg(runner.pid(), signal.SIGKILL)  # no shutdown hook, no checkpoint flush
    wait_until(lambda: not runner.alive(), timeout=30)
    assert row_count(spark, fhir_raw) < half  # killed in the middle of the backlog
    produce(half, RECORDS)  # more arrives while the job is down
    second = streaming.supervise()
    assert (second["state"], second["action"]) == (streaming.NOT_RUNNING, "restarted")
    # Each count is a Spark job beside the stream's: poll it every few seconds, not twice a second.
    wait_until(lambda: row_count(spark, fhir_raw) >= RECORDS, timeout=300, every=3)
    # A duplicate could only come from a batch planned before the kill and replayed
    # after it: once every planned batch has committed, none is left to land.
    checkpoint = Path(streaming.checkpoint_location())  # where the supervisor pointed the job
    wait_until(lambda: every_planned_batch_committed(checkpoint), timeout=60)
    return [first, second]


def every_planned_batch_committed(checkpoint: Path) -> bool:
    def batches(log: str) -> set[int]:
        return {int(p.name) for p in (checkpoint / log).glob("[0-9]*")}

    planned = batches("offsets")
    return bool(planned) and planned <= batches("commits")


def _assert_each_record_exactly_once(spark, lakehouse) -> None:
    ids = read_table(spark, str(lakehouse / "bronze" / "fhir_raw")).groupBy("resource_id").count()
    assert ids.count() == RECORDS
    assert ids.filter(F.col("count") > 1).count() == 0
    assert {r.resource_id for r in ids.collect()} == {f"s-{i}" for i in range(RECORDS)}


def test_files_stream_survives_kill_9_with_each_record_exactly_once(spark, stream_settings, http_receiver):
    landing, lakehouse = stream_settings(source="files", max_files_per_trigger=str(PER_BATCH // PER_FILE))

    def write_files(first: int, stop: int):
        for start in range(first, stop, PER_FILE):
            path = landing / "stream" / f"events-{start:05d}.ndjson"
            partial = path.with_name(f".{path.name}.tmp")  # hidden until complete, then renamed
            partial.write_text(patient_lines(range(start, start + PER_FILE)))
            partial.rename(path)

    _kill_and_restart_mid_stream(spark, lakehouse, write_files)
    _assert_each_record_exactly_once(spark, lakehouse)
    restarts = [r["body"] for r in http_receiver.received if "RESTARTED" in r["body"]]
    assert len(restarts) == 2  # on-call heard about both (re)starts


def test_kafka_stream_survives_kill_9_with_each_record_exactly_once(
    spark, stream_settings, kafka_broker, http_receiver
):
    topic = "fhir-events"
    _, lakehouse = stream_settings(
        source="kafka",
        kafka_bootstrap=kafka_broker,
        kafka_topic=topic,
        max_records_per_trigger=str(PER_BATCH),
    )

    def produce(first: int, stop: int):
        records = spark.createDataFrame(
            [(line,) for line in patient_lines(range(first, stop)).splitlines()], "value string"
        )
        records.write.format("kafka").option("kafka.bootstrap.servers", kafka_broker).option(
            "topic", topic
        ).save()

    _kill_and_restart_mid_stream(spark, lakehouse, produce)
    _assert_each_record_exactly_once(spark, lakehouse)
    sources = (
        read_table(spark, str(lakehouse / "bronze" / "fhir_raw")).select("source_file").limit(5).collect()
    )
    assert all(r.source_file.startswith(f"kafka:{topic}/") for r in sources)
