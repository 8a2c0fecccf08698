"""The stream's health, for the supervisor DAG: the latest progress and a heartbeat
in a status file."""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
import tempfile
from pathlib import Path

from pyspark.sql.streaming import StreamingQueryListener

log = logging.getLogger("fhir_lakehouse.stream")


def write_status(path: Path, status: dict) -> None:
    """Replace the status file atomically (the supervisor may read it at any time)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile("w", dir=path.parent, delete=False, suffix=".tmp") as tmp:
        json.dump(status, tmp)
    os.replace(tmp.name, path)


def backlog(progress) -> int | None:
    """Records known but not yet read: Kafka's offsets behind latest; None for files."""
    for source in progress.sources:
        metrics = source.metrics or {}
        if "maxOffsetsBehindLatest" in metrics:
            return int(float(metrics["maxOffsetsBehindLatest"]))
    return None


class StatusListener(StreamingQueryListener):
    """Publishes one query's health for the supervisor (listeners see every query of the
    session, so events of other queries are ignored)."""

    def __init__(self, path: Path, query_name: str):
        super().__init__()
        self.path = path
        self.query_name = query_name
        self.query_id: str | None = None
        self.base = {"query_name": query_name, "pid": os.getpid()}
        self.last_progress: dict = {}

    def _write(self, **fields) -> None:
        heartbeat = dt.datetime.now(dt.UTC).isoformat()
        write_status(self.path, {**self.base, **self.last_progress, **fields, "heartbeat": heartbeat})

    def onQueryStarted(self, event):  # noqa: N802 (Spark's listener API)
        if event.name != self.query_name:
            return
        self.query_id = str(event.id)
        self.base["query_id"] = self.query_id
        self._write(status="running", started_at=event.timestamp)

    def onQueryProgress(self, event):  # noqa: N802
        progress = event.progress
        if str(progress.id) != self.query_id:
            return
        self.last_progress = {
            "batch_id": progress.batchId,
            "last_batch_time": progress.timestamp,
            "input_rows": progress.numInputRows,
            "input_rows_per_second": progress.inputRowsPerSecond,
            "processed_rows_per_second": progress.processedRowsPerSecond,
            "backlog": backlog(progress),
        }
        self._write(status="running")

    def onQueryIdle(self, event):  # noqa: N802
        if str(event.id) == self.query_id:
            self._write(status="running", idle=True)

    def onQueryTerminated(self, event):  # noqa: N802
        if str(event.id) == self.query_id:
            self._write(status="failed" if event.exception else "stopped", error=event.exception)
