"""A small client for the Airflow 3 REST API (v2), as the UI uses it: log in, trigger
a run, wait for it, read task states and logs. Used by `make demo` and the
end-to-end tests."""

from __future__ import annotations

import datetime as dt
import time

import requests


class AirflowClient:
    def __init__(self, url: str, username: str = "admin", password: str = "admin"):
        self.url = url.rstrip("/")
        self._credentials = {"username": username, "password": password}
        self._token: str | None = None

    def _headers(self) -> dict[str, str]:
        if self._token is None:
            response = requests.post(f"{self.url}/auth/token", json=self._credentials, timeout=30)
            response.raise_for_status()
            self._token = response.json()["access_token"]
        return {"Authorization": f"Bearer {self._token}"}

    def api(self, method: str, path: str, **kwargs) -> dict:
        response = requests.request(
            method, f"{self.url}/api/v2{path}", headers=self._headers(), timeout=60, **kwargs
        )
        if response.status_code >= 300:
            raise RuntimeError(f"{method} {path}: {response.status_code} {response.text}")
        return response.json()

    def healthy(self) -> bool:
        try:
            health = requests.get(f"{self.url}/api/v2/monitor/health", timeout=10).json()
        except (requests.RequestException, ValueError):
            return False
        return all(
            health.get(component, {}).get("status") == "healthy"
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
            response = requests.get(f"{self.url}/api/v2/dags/{dag_id}", headers=self._headers(), timeout=30)
            if response.status_code == 200:
                return
            if time.monotonic() > deadline:
                errors = self.api("GET", "/importErrors")
                raise TimeoutError(f"{dag_id} not parsed after {timeout}s; import errors: {errors}")
            time.sleep(2)

    def unpause(self, dag_id: str) -> None:
        self.api("PATCH", f"/dags/{dag_id}", json={"is_paused": False})

    def trigger(
        self, dag_id: str, run_id: str, logical_date: dt.datetime | None, conf: dict | None = None
    ) -> dict:
        body = {
            "dag_run_id": run_id,
            "logical_date": logical_date.isoformat() if logical_date else None,
            "conf": conf or {},
        }
        return self.api("POST", f"/dags/{dag_id}/dagRuns", json=body)

    def runs(self, dag_id: str) -> list[dict]:
        return self.api("GET", f"/dags/{dag_id}/dagRuns", params={"limit": 100})["dag_runs"]

    def task_instances(self, dag_id: str, run_id: str) -> list[dict]:
        return self.api("GET", f"/dags/{dag_id}/dagRuns/{run_id}/taskInstances")["task_instances"]

    def task_states(self, dag_id: str, run_id: str) -> dict[str, str]:
        return {ti["task_id"]: ti["state"] for ti in self.task_instances(dag_id, run_id)}

    def task_log(self, dag_id: str, run_id: str, task_id: str, try_number: int = 1) -> str:
        """The task try's log as text, one line per log event."""
        body = self.api(
            "GET",
            f"/dags/{dag_id}/dagRuns/{run_id}/taskInstances/{task_id}/logs/{try_number}",
            params={"full_content": "true"},
        )
        return "\n".join(
            event.get("event", "") if isinstance(event, dict) else str(event) for event in body["content"]
        )

    def wait_for_run(self, dag_id: str, run_id: str, timeout: float = 900, progress=None) -> dict:
        """Until the run succeeds or fails; `progress(states)` is called when task states change."""
        deadline = time.monotonic() + timeout
        last = None
        while True:
            run = self.api("GET", f"/dags/{dag_id}/dagRuns/{run_id}")
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
