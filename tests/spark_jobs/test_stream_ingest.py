"""The streaming bronze job in-process: same layout as batch bronze, bad input to
quarantine while the stream keeps running, health published, exactly-once writes."""

from __future__ import annotations

import datetime as dt
import json
import time
from pathlib import Path

import pytest
from delta.tables import DeltaTable
from fhir_pipeline import config, streaming
from pyspark.sql import functions as F

from spark_jobs import stream_ingest
from spark_jobs.bronze import stream
from spark_jobs.bronze.tables import TYPED_RAW_TABLES
from spark_jobs.lakehouse import PermanentJobError, read_table, table_exists
from tests.lakehouse_helpers import ingest


def wait_until(condition, timeout: float = 120, every: float = 0.5):
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(f"condition not met after {timeout}s")
        time.sleep(every)


def patient_lines(ids) -> str:
    return "".join(
        json.dumps({"resourceType": "Patient", "id": f"s-{i}", "gender": "female"}) + "\n" for i in ids
    )


def row_count(spark, path: Path) -> int:
    # Not DeltaTable.isDeltaTable: it answers from the DeltaLog cached at the first
    # call, so a table another process creates later stays "missing" in this session.
    # Nor the _delta_log folder alone: Delta creates it before the first commit lands.
    return read_table(spark, str(path)).count() if any((path / "_delta_log").glob("*.json")) else 0


@pytest.fixture
def running_stream(spark, tmp_path, monkeypatch):
    """The job started in this session with the arguments the supervisor gives it."""
    landing, lakehouse = tmp_path / "landing", tmp_path / "lakehouse"
    (landing / "stream").mkdir(parents=True)
    settings = {
        "FHIR_LANDING_URI": str(landing),
        "FHIR_LAKEHOUSE_URI": str(lakehouse),
        "FHIR__STREAMING__SOURCE": "files",
        "FHIR__STREAMING__STATE_DIR": str(tmp_path / "state"),
        "FHIR__STREAMING__TRIGGER_SECONDS": "0.5",
    }
    for name, value in settings.items():
        monkeypatch.setenv(name, value)
    config.settings.cache_clear()
    paths = streaming.stream_paths()
    paths.state_dir.mkdir()
    args = stream.StreamOptions(
        **vars(
            stream_ingest.parse_args(
                [*streaming.job_arguments(paths), "--query-name", f"test_stream_{tmp_path.name}"]
            )
        )
    )
    config.settings.cache_clear()
    query = stream.start(spark, args)
    yield landing, lakehouse, args, query
    query.stop()


def test_stream_lands_records_with_the_batch_layout_and_quarantines_bad_ones(spark, running_stream):
    landing, lakehouse, args, query = running_stream
    (landing / "stream" / "events-1.ndjson").write_text(
        patient_lines(range(3))
        + "not json at all\n"
        + json.dumps({"resourceType": "Starship", "id": "x"})
        + "\n"
    )
    fhir_raw = lakehouse / "bronze" / "fhir_raw"
    wait_until(lambda: row_count(spark, fhir_raw) == 3)
    (landing / "stream" / "events-2.ndjson").write_text(patient_lines(range(3, 5)))
    runs = lakehouse / "bronze" / "ingest_runs"  # each batch's run-log row is its last write
    wait_until(
        lambda: (
            table_exists(spark, str(runs))
            and read_table(spark, str(runs)).agg(F.sum("records_read")).first()[0] == 7
        )
    )

    assert query.isActive  # bad input did not stop the stream
    quarantine = read_table(spark, str(lakehouse / "bronze" / "quarantine"))
    assert sorted(r.reason for r in quarantine.collect()) == ["malformed_json", "unknown_resource_type"]
    raw = read_table(spark, str(fhir_raw))
    assert {r.ingest_mode for r in raw.select("ingest_mode").distinct().collect()} == {"stream"}
    assert {r.source_file for r in raw.select("source_file").distinct().collect()} == {
        "stream/events-1.ndjson",
        "stream/events-2.ndjson",
    }
    assert read_table(spark, str(lakehouse / "bronze" / "patient_raw")).count() == 5
    streamed = read_table(spark, str(runs)).filter(F.col("status") == "streamed")
    totals = streamed.agg(F.sum("records_read"), F.sum("ingested"), F.sum("quarantined")).first()
    assert tuple(totals) == (7, 5, 2)

    status = json.loads(Path(args.status_file).read_text())
    assert status["status"] == "running" and status["query_name"] == args.query_name
    assert status["batch_id"] >= 1 and dt.datetime.fromisoformat(status["heartbeat"])


def test_batch_reload_of_a_date_keeps_the_streamed_rows(spark, running_stream, synthea_ndjson):
    landing, lakehouse, _, _ = running_stream
    (landing / "stream" / "events.ndjson").write_text(patient_lines(range(4)))
    fhir_raw = lakehouse / "bronze" / "fhir_raw"
    wait_until(lambda: row_count(spark, fhir_raw) == 4)
    today = dt.datetime.now(dt.UTC).date()
    folder = landing / "daily_extract" / today.isoformat()
    folder.mkdir(parents=True)
    (folder / "Patient.ndjson").write_text((synthea_ndjson / "Patient.ndjson").read_text())
    ingest(spark, landing, lakehouse, today)
    ingest(spark, landing, lakehouse, today, force=True)  # a reload replaces only the batch rows
    modes = {
        r.ingest_mode: r["count"]
        for r in read_table(spark, str(fhir_raw)).groupBy("ingest_mode").count().collect()
    }
    assert modes == {"stream": 4, "batch": 9}


def test_a_replayed_micro_batch_is_not_written_twice(spark, tmp_path):
    """What a restart after a crash does: the same batch id again. Delta's txnAppId/txnVersion
    make the second write a no-op in every table."""
    lines = spark.createDataFrame(
        [(patient_lines([1]).strip(), "stream/a.ndjson"), ("{broken", "stream/a.ndjson")],
        "value string, source_file string",
    )
    lakehouse = str(tmp_path / "lakehouse")
    records = stream.stream_records(lines)
    first = stream.write_batch(records, 7, lakehouse, "replay_test")
    second = stream.write_batch(records, 7, lakehouse, "replay_test")
    assert first == second == {"batch_id": 7, "ingested": 1, "quarantined": 1}
    for table in ("fhir_raw", "patient_raw", "quarantine", "ingest_runs"):
        assert read_table(spark, f"{lakehouse}/bronze/{table}").count() == 1, table
    stream.write_batch(records, 8, lakehouse, "replay_test")  # the next batch is written
    assert read_table(spark, f"{lakehouse}/bronze/fhir_raw").count() == 2


def test_a_micro_batch_commits_only_to_the_tables_it_has_rows_for(spark, tmp_path):
    """Each append is a Delta commit (~0.5 s on 2 cores, even empty), so a batch of
    Patients leaves the other typed tables and quarantine alone. They exist, empty,
    from the start, since silver reads every typed table."""
    lakehouse = str(tmp_path / "lakehouse")
    stream.prepare_tables(spark, lakehouse)
    lines = spark.createDataFrame(
        [(line, "stream/a.ndjson") for line in patient_lines([1, 2]).splitlines()],
        "value string, source_file string",
    )
    stream.write_batch(stream.stream_records(lines), 0, lakehouse, "skip_test")

    def version_and_rows(table: str) -> tuple[int, int]:
        path = f"{lakehouse}/bronze/{table}"
        return DeltaTable.forPath(spark, path).history(1).first().version, read_table(spark, path).count()

    tables = ["fhir_raw", "quarantine", "ingest_runs", *TYPED_RAW_TABLES]
    written = {"fhir_raw": (1, 2), "patient_raw": (1, 2), "ingest_runs": (1, 1)}
    assert {t: version_and_rows(t) for t in tables} == {t: written.get(t, (0, 0)) for t in tables}


def test_stream_tables_checkpoint_every_100_commits_whoever_created_them(spark, tmp_path):
    """Delta checkpoints synchronously after every checkpointInterval-th commit (default 10),
    and that batch was the latency p95. Tables the batch job (or an older stream) created
    get the stream's interval at start, without losing rows."""
    lakehouse = str(tmp_path / "lakehouse")
    lines = spark.createDataFrame(
        [(line, "stream/a.ndjson") for line in patient_lines([1]).splitlines()],
        "value string, source_file string",
    )
    records = stream.stream_records(lines)
    stream.write_batch(records, 0, lakehouse, "interval_test")  # creates 3 tables, default interval
    stream.prepare_tables(spark, lakehouse)
    tables = ["fhir_raw", "quarantine", "ingest_runs", *TYPED_RAW_TABLES]
    details = {t: DeltaTable.forPath(spark, f"{lakehouse}/bronze/{t}").detail().first() for t in tables}
    intervals = {t: detail.properties.get("delta.checkpointInterval") for t, detail in details.items()}
    assert intervals == dict.fromkeys(tables, "100")
    for batch_id in range(1, 11):
        stream.write_batch(records, batch_id, lakehouse, "interval_test")
    fhir_raw = tmp_path / "lakehouse" / "bronze" / "fhir_raw"
    assert DeltaTable.forPath(spark, str(fhir_raw)).history(1).first().version == 11
    assert not list((fhir_raw / "_delta_log").glob("*.checkpoint*.parquet"))
    assert read_table(spark, str(fhir_raw)).count() == 11


def test_event_hubs_kafka_options_use_sasl_with_the_connection_string_from_the_environment(monkeypatch):
    args = stream.StreamOptions(
        source="kafka",
        lakehouse="/l",
        checkpoint="/c",
        status_file=Path("/s"),
        kafka_bootstrap="ns.servicebus.windows.net:9093",
        kafka_topic="fhir-events",
        kafka_sasl=True,
    )
    monkeypatch.delenv(stream.EVENTHUB_SECRET_ENV, raising=False)
    with pytest.raises(PermanentJobError, match="FHIR_EVENTHUB_CONNECTION_STRING"):
        stream.kafka_options(args)
    secret = "Endpoint=sb://ns.servicebus.windows.net/;SharedAccessKeyName=listen;SharedAccessKey=abc="
    monkeypatch.setenv(stream.EVENTHUB_SECRET_ENV, secret)
    options = stream.kafka_options(args)
    assert options["kafka.security.protocol"] == "SASL_SSL" and options["kafka.sasl.mechanism"] == "PLAIN"
    assert 'username="$ConnectionString"' in options["kafka.sasl.jaas.config"]
    assert f'password="{secret}"' in options["kafka.sasl.jaas.config"]
    assert options["subscribe"] == "fhir-events"
