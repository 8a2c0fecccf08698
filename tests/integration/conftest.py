"""Real services for the end-to-end tests: PostgreSQL (the Debian server binaries),
and Airflow 3 as separate api-server, scheduler, dag-processor and triggerer
processes with the LocalExecutor on that database, its Spark jobs run by a job
server (spark_jobs/job_server.py) of its own."""

from __future__ import annotations

import contextlib
import datetime as dt
import glob
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.conftest import REPO, free_port, wait_for_port
from tests.lakehouse_helpers import TEST_PHI_KEY
from tools.airflow_client import AirflowClient

AIRFLOW_COMPONENTS = ("api-server", "scheduler", "dag-processor", "triggerer")

RUN_DAY = dt.date(2026, 11, 20)
SCHEDULED = dt.time(6, 0, tzinfo=dt.UTC)  # the batch cron's time of day


def at_schedule(day: dt.date) -> dt.datetime:
    return dt.datetime.combine(day, SCHEDULED)


def assert_success(airflow, dag_id: str, run: dict) -> None:
    if run["state"] != "success":
        instances = airflow.task_instances(dag_id, run["dag_run_id"])
        states = {ti["task_id"]: ti["state"] for ti in instances}
        logs = "\n".join(
            airflow.task_log(dag_id, run["dag_run_id"], ti["task_id"], ti["try_number"])[-3000:]
            for ti in instances
            if ti["state"] not in ("success", "skipped") and ti["try_number"]  # upstream_failed: no log
        )
        pytest.fail(
            f"{dag_id} {run['dag_run_id']} ended {run['state']}: {states}\n{logs}\n{airflow.logs_tail()}"
        )


# The ML DAG's tasks when train_models had nothing to train: every model skipped.
TRAINING_SKIPPED = {
    "train_models": "skipped",
    "register_in_azure_ml": "skipped",
    "score_risk": "skipped",
    "page_stale_champions": "success",
    "page_drift": "skipped",
}


def asset_triggered_run(airflow, dag_id: str, timeout: float = 120) -> str:
    """The run id of the DAG's first Asset-triggered run, once the scheduler created it."""
    deadline = time.monotonic() + timeout
    while True:
        runs = airflow.runs(dag_id)
        triggered = [r for r in runs if r["run_type"] == "asset_triggered"]
        if triggered:
            return triggered[0]["dag_run_id"]
        assert time.monotonic() < deadline, f"no Asset-triggered run of {dag_id} after {timeout} s"
        time.sleep(3)


def _postgres_bin() -> Path:
    found = shutil.which("pg_ctl")
    if found:
        return Path(found).resolve().parent
    candidates = sorted(glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"))
    if not candidates:
        pytest.fail(
            "PostgreSQL server binaries not found: install the Debian package postgresql (make setup does)"
        )
    return Path(candidates[-1]).parent


def _as_postgres(command: list[str]) -> list[str]:
    """PostgreSQL refuses to run as root: drop to the postgres user when we are root."""
    return ["runuser", "-u", "postgres", "--", *command] if os.geteuid() == 0 else command


@pytest.fixture(scope="session")
def postgres():
    """A throwaway PostgreSQL cluster on a free port; yields a function making databases."""
    bindir = _postgres_bin()
    root = Path(tempfile.mkdtemp(prefix="fhir-pg-"))
    data, socket_dir = root / "data", root / "socket"
    socket_dir.mkdir()
    if os.geteuid() == 0:
        shutil.chown(root, "postgres")
        shutil.chown(socket_dir, "postgres")
    port = free_port()
    subprocess.run(
        _as_postgres(
            [str(bindir / "initdb"), "-D", str(data), "-U", "airflow", "--auth=trust", "-E", "UTF8"]
        ),
        check=True,
        capture_output=True,
    )
    subprocess.run(
        _as_postgres(
            [
                str(bindir / "pg_ctl"),
                "-D",
                str(data),
                "-l",
                str(root / "postgres.log"),
                "-o",
                f"-p {port} -k {socket_dir} -c listen_addresses=127.0.0.1",
                "-w",
                "start",
            ]
        ),
        check=True,
        capture_output=True,
    )

    def database(name: str) -> str:
        subprocess.run(
            [str(bindir / "createdb"), "-h", "127.0.0.1", "-p", str(port), "-U", "airflow", name],
            check=True,
            capture_output=True,
        )
        return f"postgresql+psycopg2://airflow@127.0.0.1:{port}/{name}"

    try:
        yield database
    finally:
        subprocess.run(
            _as_postgres([str(bindir / "pg_ctl"), "-D", str(data), "-m", "immediate", "stop"]),
            capture_output=True,
        )
        shutil.rmtree(root, ignore_errors=True)


@dataclass
class Airflow(AirflowClient):
    """A running Airflow deployment: its processes, home, environment and REST client."""

    home: Path = None
    env: dict[str, str] = field(default_factory=dict)
    processes: list[subprocess.Popen] = field(default_factory=list)

    def __post_init__(self):
        AirflowClient.__init__(self, self.env["AIRFLOW__API__BASE_URL"])

    def cli(self, *args: str, timeout: float = 300) -> subprocess.CompletedProcess:
        return subprocess.run(
            ["airflow", *args], env=self.env, capture_output=True, text=True, timeout=timeout
        )

    def logs_tail(self, lines: int = 40) -> str:
        tails = []
        for log in sorted(self.home.glob("*.log")):
            tails.append(
                f"--- {log.name}\n" + "\n".join(log.read_text(errors="replace").splitlines()[-lines:])
            )
        return "\n".join(tails)

    def stop(self) -> None:
        for process in self.processes:
            with_group_signal(process, signal.SIGTERM)
        deadline = time.monotonic() + 20
        for process in self.processes:
            try:
                process.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                # The dag-processor may ignore SIGTERM for a long time.
                with_group_signal(process, signal.SIGKILL)
                process.wait(timeout=10)


def with_group_signal(process: subprocess.Popen, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, sig)


def airflow_environment(home: Path, database_url: str, port: int, extra: dict[str, str]) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        {
            "AIRFLOW_HOME": str(home),
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": database_url,
            "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
            "AIRFLOW__CORE__PARALLELISM": "4",
            "AIRFLOW__CORE__DAGS_FOLDER": str(REPO / "dags"),
            "AIRFLOW__CORE__PLUGINS_FOLDER": str(REPO / "plugins"),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "True",
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": "admin:admin",
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(home / "passwords.json"),
            "AIRFLOW__API__HOST": "127.0.0.1",
            "AIRFLOW__API__PORT": str(port),
            "AIRFLOW__API__BASE_URL": f"http://127.0.0.1:{port}",
            "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"http://127.0.0.1:{port}/execution/",
            "AIRFLOW__API_AUTH__JWT_SECRET": "e2e-jwt-secret-not-for-production",
            "AIRFLOW__API__SECRET_KEY": "e2e-api-secret-not-for-production",
            # The DAG files do not change during a test: parsed once, not every few seconds
            # (each parse of the four files takes about 2.4 CPU seconds).
            "AIRFLOW__DAG_PROCESSOR__MIN_FILE_PROCESS_INTERVAL": "3600",
            "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "5",
            "AIRFLOW__SCHEDULER__SCHEDULER_HEARTBEAT_SEC": "2",
            "AIRFLOW__LOGGING__LOGGING_LEVEL": "INFO",
            "AIRFLOW_CONN_SPARK_DEFAULT": json.dumps(
                {"conn_type": "spark", "host": "local[2]", "extra": {"deploy-mode": "client"}}
            ),
            "AIRFLOW_CONN_FS_DEFAULT": json.dumps({"conn_type": "fs", "extra": {"path": "/"}}),
            "FHIR_PHI_HASH_KEY": TEST_PHI_KEY.decode(),
            # Unpausing a DAG (catchup off) creates a run for its latest schedule tick,
            # whose sensor then waits (deferred) for today's extract, which the tests do
            # not write. A second run slot lets the tests' own runs proceed beside it.
            "FHIR__BATCH__MAX_ACTIVE_RUNS": "2",
            # Fast retries keep failure tests short; the policy still requires >= 2 with backoff.
            "FHIR__RETRIES__RETRIES": "2",
            "FHIR__RETRIES__RETRY_DELAY_SECONDS": "2",
            "FHIR__RETRIES__MAX_RETRY_DELAY_MINUTES": "1",
            "FHIR__LANDING__SENSOR_POKE_SECONDS": "3",
        }
    )
    env.update(extra)
    return env


def start_job_server(home: Path, env: dict[str, str]) -> tuple[subprocess.Popen, str]:
    """A job server with the deployment's environment (its secrets, storage, MLflow)."""
    port = free_port()
    log = open(home / "job-server.log", "w")  # noqa: SIM115 - the child process owns it
    process = subprocess.Popen(
        [sys.executable, "-m", "spark_jobs.job_server", "--port", str(port)],
        env=env,
        cwd=REPO,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    return process, f"http://127.0.0.1:{port}"


def wait_for_job_server(url: str, process: subprocess.Popen, timeout: float = 180) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            with urllib.request.urlopen(f"{url}/health", timeout=5):
                return
        except OSError:
            assert process.poll() is None, f"the job server exited with status {process.returncode}"
            assert time.monotonic() < deadline, f"no job server at {url} after {timeout} s"
            time.sleep(1)


@pytest.fixture(scope="session")
def start_airflow(postgres, tmp_path_factory):
    """start_airflow(name, extra_env) -> a running Airflow on its own database, its
    Spark jobs run by a job server of its own, as `make demo` runs them; with
    job_server=False, by the backend extra_env configures (the cluster test's
    spark_submit; the spark_submit operator also runs in tests/plugins/test_compute.py)."""
    started: list[Airflow] = []

    def start(name: str, extra: dict[str, str], job_server: bool = True) -> Airflow:
        home = tmp_path_factory.mktemp(f"airflow-{name}")
        (home / "passwords.json").write_text(json.dumps({"admin": "admin"}))
        port = free_port()
        env = airflow_environment(home, postgres(f"airflow_{name}"), port, extra)
        airflow = Airflow(home=home, env=env)
        started.append(airflow)
        if job_server:
            # Started first: its JVM warms up while the database migrates.
            server, url = start_job_server(home, env)
            airflow.processes.append(server)
            env.update({"FHIR__COMPUTE__BACKEND": "job_server", "FHIR__COMPUTE__JOB_SERVER_URL": url})
        migrate = subprocess.run(
            ["airflow", "db", "migrate"], env=env, capture_output=True, text=True, timeout=600
        )
        assert migrate.returncode == 0, migrate.stderr[-3000:]
        for component in AIRFLOW_COMPONENTS:
            log = open(home / f"{component}.log", "w")  # noqa: SIM115 - the child process owns it
            airflow.processes.append(
                subprocess.Popen(
                    ["airflow", *component.split()],
                    env=env,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                )
            )
        try:
            wait_for_port(port, timeout=180)
            airflow.wait_until_healthy(timeout=180)
            if job_server:
                wait_for_job_server(url, server)
        except Exception:
            print(airflow.logs_tail())
            raise
        return airflow

    yield start
    for airflow in started:
        airflow.stop()


KAFKA_LIBS = REPO / ".local" / "kafka" / "libs"


@pytest.fixture(scope="session")
def kafka_broker(tmp_path_factory):
    """A real single-node Apache Kafka broker in KRaft mode (jars from Maven Central via
    make setup: tests/integration/kafka/pom.xml); yields its bootstrap address."""
    if not any(KAFKA_LIBS.glob("kafka_2.13-*.jar")):
        pytest.fail("Kafka broker jars missing: run `make setup`")
    root = tmp_path_factory.mktemp("kafka")
    port, controller = free_port(), free_port()
    properties = root / "server.properties"
    properties.write_text(
        "\n".join(
            [
                "process.roles=broker,controller",
                "node.id=1",
                f"controller.quorum.voters=1@127.0.0.1:{controller}",
                f"listeners=PLAINTEXT://127.0.0.1:{port},CONTROLLER://127.0.0.1:{controller}",
                f"advertised.listeners=PLAINTEXT://127.0.0.1:{port}",
                "controller.listener.names=CONTROLLER",
                "listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT",
                f"log.dirs={root / 'data'}",
                "num.partitions=2",
                "offsets.topic.replication.factor=1",
                "transaction.state.log.replication.factor=1",
                "transaction.state.log.min.isr=1",
                "group.initial.rebalance.delay.ms=0",
            ]
        )
    )
    classpath = f"{KAFKA_LIBS}/*"
    cluster_id = (
        subprocess.run(
            ["java", "-cp", classpath, "kafka.tools.StorageTool", "random-uuid"],
            capture_output=True,
            text=True,
            check=True,
        )
        .stdout.strip()
        .splitlines()[-1]
    )
    subprocess.run(
        [
            "java",
            "-cp",
            classpath,
            "kafka.tools.StorageTool",
            "format",
            "-t",
            cluster_id,
            "-c",
            str(properties),
        ],
        capture_output=True,
        check=True,
    )
    with open(root / "kafka.log", "w") as log:
        process = subprocess.Popen(
            ["java", "-Xmx512m", "-cp", classpath, "kafka.Kafka", str(properties)],
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        wait_for_port(port, timeout=90)
        yield f"127.0.0.1:{port}"
    finally:
        with_group_signal(process, signal.SIGKILL)
        process.wait(timeout=30)
