"""Streaming bronze: FHIR events into bronze within seconds, exactly once.

    python -m spark_jobs.stream_ingest --source files --landing <root> --lakehouse <root> \\
        --checkpoint <uri> --status-file <path> [--trigger-seconds 30]
    python -m spark_jobs.stream_ingest --source kafka --kafka-bootstrap <host:port> --kafka-topic <topic> ...

Sources:
- files: NDJSON files arriving in <landing>/stream/ (local path or abfss://);
- kafka: a Kafka topic, one FHIR resource or Bundle per message value. Azure Event
  Hubs is read through its Kafka endpoint: --kafka-bootstrap <namespace>.servicebus.windows.net:9093
  --kafka-sasl, with the namespace connection string in FHIR_EVENTHUB_CONNECTION_STRING
  (SASL_SSL / PLAIN, user "$ConnectionString").

Every micro-batch goes through the batch bronze transforms (spark_jobs.bronze:
the same record layout, quarantine reasons and counts) and is appended, with
ingest_mode = 'stream', to those of bronze/fhir_raw, the typed raw tables and
bronze/quarantine it has rows for (all are created empty at start, and checkpoint
their Delta log every STREAM_CHECKPOINT_INTERVAL commits), plus one row in
bronze/ingest_runs. Exactly once: the checkpoint replays an unfinished
micro-batch after a crash, and each append carries Delta's idempotent-write
options (txnAppId = the query name, txnVersion = the batch id), so a replayed
batch is not written twice.

Health: a StreamingQueryListener writes the latest progress (last batch time,
input rows, processing rate, backlog) and a heartbeat to --status-file, which
the fhir_streaming_supervisor DAG reads.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from spark_jobs.bronze.stream import StreamOptions, start
from spark_jobs.lakehouse import configure_logging, run_job
from spark_jobs.session import build_spark_session


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="stream_ingest", description=__doc__.split("\n")[0])
    parser.add_argument("--source", choices=["files", "kafka"], required=True)
    parser.add_argument("--landing", help="landing root (files source): reads <landing>/stream/")
    parser.add_argument("--lakehouse", required=True)
    parser.add_argument(
        "--checkpoint", required=True, help="checkpoint location (keep it: it is the stream's state)"
    )
    parser.add_argument("--status-file", required=True, type=Path, help="where the health status is written")
    parser.add_argument("--query-name", default="fhir_stream_ingest")
    parser.add_argument(
        "--trigger-seconds", type=float, default=30.0, help="micro-batch interval (seeds: 30 s)"
    )
    parser.add_argument("--max-files-per-trigger", type=int, default=100)
    parser.add_argument("--max-records-per-trigger", type=int, default=100_000)
    parser.add_argument("--kafka-bootstrap")
    parser.add_argument("--kafka-topic")
    parser.add_argument("--kafka-starting-offsets", default="earliest")
    parser.add_argument(
        "--kafka-sasl", action="store_true", help="SASL_SSL with the Event Hubs connection string"
    )
    args = parser.parse_args(argv)
    if args.source == "files" and not args.landing:
        parser.error("--source files needs --landing")
    if args.source == "kafka" and not (args.kafka_bootstrap and args.kafka_topic):
        parser.error("--source kafka needs --kafka-bootstrap and --kafka-topic")
    return args


def main(argv: list[str] | None = None) -> None:
    configure_logging()
    options = StreamOptions(**vars(parse_args(argv)))
    spark = build_spark_session("fhir-stream-ingest")
    start(spark, options).awaitTermination()


if __name__ == "__main__":
    run_job(main)
