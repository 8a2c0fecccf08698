"""The stream supervisor's decisions: restart a dead or stuck job, page on lag, give
up (loudly) after too many restarts in an hour. The process control itself is
exercised for real in tests/integration/test_streaming_e2e.py."""

from __future__ import annotations

import datetime as dt
import json
import shlex
import subprocess
import sys
import time
from pathlib import Path

import pytest
from fhir_pipeline import config, streaming

from tests.conftest import alert_connections

NOW = dt.datetime(2026, 11, 23, 12, 0, tzinfo=dt.UTC)


class RecordingRunner:
    """Stands in for LocalStream/DatabricksStream to check the supervisor's choices."""

    def __init__(self, alive: bool, status: dict | None):
        self._alive, self._status = alive, status
        self.calls = []

    def alive(self):
        return self._alive

    def status(self):
        return self._status

    def stop(self, grace_seconds=30):
        self.calls.append("stop")

    def start(self):
        self.calls.append("start")
        return 4242


def status(minutes_ago: float, backlog=None) -> dict:
    beat = (NOW - dt.timedelta(minutes=minutes_ago)).isoformat()
    return {
        "status": "running",
        "heartbeat": beat,
        "batch_id": 9,
        "last_batch_time": beat,
        "backlog": backlog,
    }


@pytest.fixture
def supervisor(monkeypatch, tmp_path, http_receiver, smtp_receiver):
    for key, value in alert_connections(http_receiver, smtp_receiver).items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("FHIR__ALERTS__CHANNELS", "slack")
    monkeypatch.setenv("FHIR__STREAMING__STATE_DIR", str(tmp_path))
    monkeypatch.setenv("FHIR__STREAMING__MAX_RESTARTS_PER_HOUR", "2")
    config.settings.cache_clear()
    yield http_receiver
    config.settings.cache_clear()


def pages(receiver) -> list[str]:
    return [json.loads(r["body"])["text"] for r in receiver.received]


def test_healthy_stream_is_left_alone(supervisor):
    runner = RecordingRunner(alive=True, status=status(minutes_ago=0.5))
    assert streaming.supervise(NOW, runner)["action"] == "none"
    assert runner.calls == [] and pages(supervisor) == []


@pytest.mark.parametrize(
    ("alive", "minutes_ago", "state"),
    [(False, 0.5, streaming.NOT_RUNNING), (True, 12, streaming.STALLED)],
)
def test_dead_or_stuck_stream_is_restarted_and_on_call_paged(supervisor, alive, minutes_ago, state):
    runner = RecordingRunner(alive=alive, status=status(minutes_ago))
    result = streaming.supervise(NOW, runner)
    assert (result["state"], result["action"], result["started"]) == (state, "restarted", 4242)
    assert runner.calls == ["stop", "start"]
    [text] = pages(supervisor)
    assert "RESTARTED" in text and "restart 1 of at most 2" in text


def test_lag_pages_without_restarting(supervisor):
    runner = RecordingRunner(alive=True, status=status(minutes_ago=0.2, backlog=250_000))
    assert streaming.supervise(NOW, runner)["action"] == "paged"
    assert runner.calls == []
    assert "LAGGING: backlog 250000 records" in pages(supervisor)[0]


def test_gives_up_loudly_after_too_many_restarts_in_an_hour(supervisor):
    for minutes in (50, 10):  # two restarts already in the last hour (the limit)
        streaming.supervise(NOW - dt.timedelta(minutes=minutes), RecordingRunner(alive=False, status=None))
    runner = RecordingRunner(alive=False, status=None)
    assert streaming.supervise(NOW, runner)["action"] == "gave_up"
    assert runner.calls == []
    assert "GIVING UP" in pages(supervisor)[-1]
    # An hour later the old restarts no longer count.
    later = RecordingRunner(alive=False, status=None)
    assert streaming.supervise(NOW + dt.timedelta(minutes=61), later)["action"] == "restarted"


def _local_stream(tmp_path, command: list[str]):
    """A LocalStream whose pid file points at `command`, started here; and the process."""
    process = subprocess.Popen(command)
    paths = streaming.StreamPaths(tmp_path)
    paths.pid_file.write_text(str(process.pid))
    return streaming.LocalStream(paths), process


def test_local_stream_stays_alive_while_it_execs(tmp_path):
    """spark-submit execs spark-class, which execs java; each exec briefly shows an empty
    command line. Here 30 nested execs, each carrying the job's name, as the real chain does."""
    script = (
        'if [ "$1" -gt 0 ]; then exec bash -c "$0" "$0" $(($1 - 1)) stream_ingest; fi; '
        f"exec {shlex.quote(sys.executable)} -c 'import time; time.sleep(2)' stream_ingest"
    )
    runner, process = _local_stream(tmp_path, ["bash", "-c", script, script, "30", "stream_ingest"])
    try:
        seen = [runner.alive() for _ in range(2000)]
        assert all(seen)
    finally:
        process.kill()
        process.wait()


def test_local_stream_is_dead_once_exited_even_before_it_is_reaped(tmp_path):
    runner, process = _local_stream(tmp_path, [sys.executable, "-c", "pass", "stream_ingest"])
    stat = Path(f"/proc/{process.pid}/stat")
    while stat.read_text().split(") ")[1][0] != "Z":  # exited, not yet waited for: a zombie
        time.sleep(0.01)
    assert not runner.alive()
    process.wait()
    assert not runner.alive()
