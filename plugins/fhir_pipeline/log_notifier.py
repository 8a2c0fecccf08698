"""The `log` alert channel: a notifier that needs no connection.

Each page becomes a WARNING line in the log of whatever sends it (the failed
task's log, the triggerer's log for a missed deadline) and one JSON object
appended to a JSON-lines file, so a fresh clone pages somewhere on-call can
read, and a page is never lost when the other channels cannot be used. It is an
Airflow notifier like the provider ones, so `fhir_pipeline.alerts` renders and
calls (or awaits) it the same way.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
from pathlib import Path
from typing import Any

from airflow.sdk import BaseNotifier

log = logging.getLogger("fhir_pipeline.alerts")


class LogNotifier(BaseNotifier):
    """Writes a page to the log and appends it to `path` as one JSON line:
    {"at", "kind", "subject", "message"} plus "dag_id", "run_id", "task_id" when known."""

    template_fields = ("subject", "message")

    def __init__(self, *, kind: str, subject: str, message: str, path: str, **kwargs):
        super().__init__(**kwargs)
        self.kind = kind
        self.subject = subject
        self.message = message
        self.path = Path(path)

    def notify(self, context) -> None:
        record = {
            "at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
            "kind": self.kind,
            "subject": self.subject,
            "message": self.message,
            **_run_fields(context),
        }
        # The log line first: it reaches the task log even if the file cannot be written.
        log.warning("ON-CALL PAGE (%s): %s [also in %s]", self.kind, self.message, self.path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        line = (json.dumps(record, default=str) + "\n").encode()
        # One write() on an O_APPEND descriptor: lines from concurrent tasks do not interleave.
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            os.write(fd, line)
        finally:
            os.close(fd)

    async def async_notify(self, context) -> None:
        # A local append takes microseconds: no need to leave the triggerer's event loop.
        self.notify(context)


def _run_fields(context) -> dict[str, str]:
    """dag_id, run_id and task_id where the context has them. A task's context holds
    objects (dag, ti, run_id); a deadline callback's holds plain dicts (dag_run with
    dag_id and dag_run_id); a plain page has none."""
    dag_run = context.get("dag_run")
    fields = {
        "dag_id": getattr(context.get("dag"), "dag_id", None) or _field(dag_run, "dag_id"),
        "run_id": context.get("run_id") or _field(dag_run, "run_id") or _field(dag_run, "dag_run_id"),
        "task_id": getattr(context.get("ti"), "task_id", None),
    }
    return {name: str(value) for name, value in fields.items() if value}


def _field(obj: Any, name: str) -> Any:
    return obj.get(name) if isinstance(obj, dict) else getattr(obj, name, None)
