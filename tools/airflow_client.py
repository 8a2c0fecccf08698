"""The official Airflow REST client (`apache-airflow-client`, API v2), wrapped with what
`make demo` and the end-to-end tests need: a login, waits (for health, a parsed DAG, a
finished run), and results as plain dicts, as the JSON API returns them."""

from __future__ import annotations

import datetime as dt
import json
import time

import urllib3
from airflow_client.client import (
    ApiClient,
    AssetApi,
    BackfillApi,
    Configuration,
    DAGApi,
    DAGPatchBody,
    DagRunApi,
    ImportErrorApi,
    MonitorApi,
    StructuredLogMessage,
    TaskInstanceApi,
    TriggerDAGRunPostBody,
)
from airflow_client.client.exceptions import ApiException, NotFoundException
from pydantic import BaseModel

TIMEOUT = 60.0  # seconds, per request


def _plain(model: BaseModel) -> dict:
    """A response model as the JSON API sends it: null fields kept, ISO datetimes, enum values.

    (The models' `to_dict()` drops null fields, which callers read: a run's logical_date,
    a task instance's state or duration.)"""
    return model.model_dump(mode="json", by_alias=True)


class AirflowClient:
    def __init__(self, url: str, username: str = "admin", password: str = "admin"):
        self.url = url.rstrip("/")
        self._credentials = {"username": username, "password": password}
        # The client's operation paths start with /api/v2: its host is the server's root.
        self._client = ApiClient(Configuration(host=self.url))

    def _login(self) -> ApiClient:
        """The client, with a token once the server is up. The simple auth manager issues
        its JWT from POST /auth/token (the client's LoginApi only has the browser redirect)."""
        configuration = self._client.configuration
        if configuration.access_token is None:
            response = self._client.call_api(
                "POST",
                f"{self.url}/auth/token",
                header_params={"Content-Type": "application/json", "Accept": "application/json"},
                body=self._credentials,
                _request_timeout=30.0,
            )
            response.read()
            if not 200 <= response.status < 300:
                raise ApiException(http_resp=response)
            configuration.access_token = json.loads(response.data)["access_token"]
        return self._client

    def healthy(self) -> bool:
        try:
            health = _plain(MonitorApi(self._client).get_health(_request_timeout=10.0))
        except (ApiException, urllib3.exceptions.HTTPError, ValueError):
            return False
        return all(
            (health.get(component) or {}).get("status") == "healthy"
            for component in ("metadatabase", "scheduler", "triggerer", "dag_processor")
        )

    def wait_until_healthy(self, timeout: float = 240) -> None:
        deadline = time.monotonic() + timeout
        while not self.healthy():
            if time.monotonic() > deadline:
                raise TimeoutError(f"Airflow at {self.url} not healthy after {timeout}s")
            time.sleep(2)

    def wait_for_dag(self, dag_id: str, timeout: float = 180) -> None:
        """Until the dag-processor has parsed the DAG."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                DAGApi(self._login()).get_dag(dag_id, _request_timeout=30.0)
                return
            except NotFoundException:
                pass  # not parsed yet: ask again until the deadline
            if time.monotonic() > deadline:
                errors = self.import_errors()
                raise TimeoutError(f"{dag_id} not parsed after {timeout}s; import errors: {errors}")
            time.sleep(2)

    def import_errors(self) -> list[dict]:
        return [
            _plain(e)
            for e in ImportErrorApi(self._login()).get_import_errors(_request_timeout=TIMEOUT).import_errors
        ]

    def unpause(self, dag_id: str) -> None:
        DAGApi(self._login()).patch_dag(dag_id, DAGPatchBody(is_paused=False), _request_timeout=TIMEOUT)

    def trigger(
        self, dag_id: str, run_id: str, logical_date: dt.datetime | None, conf: dict | None = None
    ) -> dict:
        body = TriggerDAGRunPostBody(dag_run_id=run_id, logical_date=logical_date, conf=conf or {})
        return _plain(DagRunApi(self._login()).trigger_dag_run(dag_id, body, _request_timeout=TIMEOUT))

    def runs(self, dag_id: str) -> list[dict]:
        """The DAG's first 100 runs, oldest first."""
        response = DagRunApi(self._login()).get_dag_runs(dag_id, limit=100, _request_timeout=TIMEOUT)
        return [_plain(run) for run in response.dag_runs]

    def dag_run(self, dag_id: str, run_id: str) -> dict:
        return _plain(DagRunApi(self._login()).get_dag_run(dag_id, run_id, _request_timeout=TIMEOUT))

    def backfills(self, dag_id: str) -> list[dict]:
        response = BackfillApi(self._login()).list_backfills(dag_id, _request_timeout=TIMEOUT)
        return [_plain(backfill) for backfill in response.backfills]

    def asset_events(self, source_dag_id: str, source_run_id: str) -> list[dict]:
        """The asset events a DAG run emitted."""
        response = AssetApi(self._login()).get_asset_events(
            source_dag_id=source_dag_id, source_run_id=source_run_id, _request_timeout=TIMEOUT
        )
        return [_plain(event) for event in response.asset_events]

    def task_instances(self, dag_id: str, run_id: str) -> list[dict]:
        response = TaskInstanceApi(self._login()).get_task_instances(dag_id, run_id, _request_timeout=TIMEOUT)
        return [_plain(ti) for ti in response.task_instances]

    def task_states(self, dag_id: str, run_id: str) -> dict[str, str]:
        return {ti["task_id"]: ti["state"] for ti in self.task_instances(dag_id, run_id)}

    def task_log(self, dag_id: str, run_id: str, task_id: str, try_number: int = 1) -> str:
        """The task try's log as text, one line per log event."""
        response = TaskInstanceApi(self._login()).get_log(
            dag_id,
            run_id,
            task_id,
            try_number,
            full_content=True,
            accept="application/json",
            _request_timeout=TIMEOUT,
        )
        # The content is a list of structured messages, or of plain strings.
        return "\n".join(
            event.event if isinstance(event, StructuredLogMessage) else str(event)
            for event in response.content.actual_instance or []
        )

    def wait_for_run(self, dag_id: str, run_id: str, timeout: float = 900, progress=None) -> dict:
        """Until the run succeeds or fails; `progress(states)` is called when task states change."""
        deadline = time.monotonic() + timeout
        last = None
        while True:
            run = self.dag_run(dag_id, run_id)
            if progress is not None:
                states = self.task_states(dag_id, run_id)
                if states != last:
                    progress(states)
                    last = states
            if run["state"] in ("success", "failed"):
                return run
            if time.monotonic() > deadline:
                raise TimeoutError(f"{dag_id}/{run_id} still {run['state']} after {timeout}s")
            time.sleep(3)
