"""The one definition of the Spark standalone cluster: a master and two workers of one
core each, started from the Spark the project installs (the pyspark package in .venv).

    python -m tools.spark_cluster up [--root .local/cluster]    (make cluster)
    python -m tools.spark_cluster down [--root .local/cluster]  (make down)

The test fixture (tests/integration/test_cluster_e2e.py) starts the same cluster on
free ports, and docker-compose.yaml's spark-master and spark-worker run the same
commands (tests/test_docker_compose.py holds them to master_command/worker_command).
Locally every process listens on 127.0.0.1; each worker has its own work dir and
starts with a clean environment (daemon_environment): nothing of the driver's venv,
PYTHONPATH or repository reaches an executor except through spark-submit.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
DEFAULT_ROOT = REPO / ".local" / "cluster"

MASTER_CLASS = "org.apache.spark.deploy.master.Master"
WORKER_CLASS = "org.apache.spark.deploy.worker.Worker"
HOST = "127.0.0.1"
MASTER_PORT = 7077
# Web UIs inside a container (docker-compose) ...
MASTER_WEBUI_PORT = 8080
WORKER_WEBUI_PORT = 8081
# ... and on this machine, where Airflow has 8080: the host ports compose maps them to.
LOCAL_MASTER_WEBUI_PORT = 8081
LOCAL_WORKER_WEBUI_PORTS = (8082, 8083)
WORKERS = 2
WORKER_CORES = 1
WORKER_MEMORY = "2g"
# Application folders (shipped zips, the unpacked executor environment, logs) of
# finished applications are removed after a day.
WORKER_OPTS = "-Dspark.worker.cleanup.enabled=true -Dspark.worker.cleanup.appDataTtl=86400"
# The worker's own work folder inside a container.
CONTAINER_WORK_DIR = "/opt/spark-work"


def master_command(host: str, port: int, webui_port: int, spark_class: str = "spark-class") -> list[str]:
    return [spark_class, MASTER_CLASS, "--host", host, "--port", str(port), "--webui-port", str(webui_port)]


def worker_command(
    master_url: str,
    webui_port: int,
    work_dir: str,
    host: str | None = None,
    spark_class: str = "spark-class",
) -> list[str]:
    """A worker of WORKER_CORES cores and WORKER_MEMORY. Without a host it advertises its
    own address (compose replicas share one service name)."""
    return [
        spark_class,
        WORKER_CLASS,
        *(["--host", host] if host else []),
        "--cores", str(WORKER_CORES),
        "--memory", WORKER_MEMORY,
        "--webui-port", str(webui_port),
        "--work-dir", work_dir,
        master_url,
    ]  # fmt: skip


# The name executors find the shipped Python environment under (tools/executor_env.py):
# `--archives <tar.gz>#environment`.
EXECUTOR_ENVIRONMENT = "environment"


def job_conf(driver_python: str = sys.executable) -> dict[str, str]:
    """What a job submitted to this cluster from this machine sets besides the project's
    conf: executors run the shipped environment (executor_archive), the driver its own
    interpreter, and the driver listens on 127.0.0.1 like the cluster."""
    return {
        "spark.pyspark.python": f"./{EXECUTOR_ENVIRONMENT}/bin/python",
        "spark.pyspark.driver.python": driver_python,
        "spark.driver.host": HOST,
        "spark.driver.bindAddress": HOST,
    }


def executor_archive(archive: Path | str) -> str:
    """The --archives entry of the executor environment built by tools.executor_env."""
    return f"{archive}#{EXECUTOR_ENVIRONMENT}"


def airflow_environment(cluster: Cluster, archive: Path | str) -> dict[str, str]:
    """What an Airflow deployment sets for its tasks to spark-submit to this cluster in
    client mode, the executors running the shipped environment `archive`."""
    from fhir_pipeline.config import load_settings

    defaults = load_settings(environ={}).compute.spark_conf  # the YAML's, without overrides
    return {
        "AIRFLOW_CONN_SPARK_DEFAULT": json.dumps(
            {
                "conn_type": "spark",
                "host": f"spark://{HOST}",
                "port": cluster.master_port,
                "extra": {"deploy-mode": "client"},
            }
        ),
        "FHIR__COMPUTE__BACKEND": "spark_submit",
        "FHIR__COMPUTE__SPARK_CONF": json.dumps({**defaults, **job_conf()}),
        "FHIR__COMPUTE__ARCHIVES": executor_archive(archive),
    }


def spark_home() -> Path:
    """The Spark that pip installed: the pyspark package holds bin/, jars/ and python/lib."""
    import pyspark

    return Path(pyspark.__file__).resolve().parent


def java_home() -> Path:
    if os.environ.get("JAVA_HOME"):
        return Path(os.environ["JAVA_HOME"])
    java = shutil.which("java")
    if not java:
        raise RuntimeError("Java 17 is required (java not found)")
    return Path(java).resolve().parent.parent


def daemon_environment(root: Path, **extra: str) -> dict[str, str]:
    """All a master or worker process gets: Java, Spark, a minimal PATH, its own (empty)
    configuration folder and 127.0.0.1. No PYTHONPATH, venv or project variable."""
    java = java_home()
    return {
        "JAVA_HOME": str(java),
        "SPARK_HOME": str(spark_home()),
        "SPARK_CONF_DIR": str(root / "conf"),
        "SPARK_LOG_DIR": str(root / "logs"),
        "SPARK_LOCAL_IP": HOST,
        "PATH": f"{java / 'bin'}:/usr/bin:/bin",
        "LANG": "C.UTF-8",
        **extra,
    }


def free_ports(count: int) -> list[int]:
    """`count` distinct ports free now (held together while picked, so none repeats)."""
    with contextlib.ExitStack() as stack:
        sockets = [stack.enter_context(socket.socket()) for _ in range(count)]
        for s in sockets:
            s.bind((HOST, 0))
        return [s.getsockname()[1] for s in sockets]


@dataclass(frozen=True)
class Cluster:
    """A master and WORKERS workers under `root` (PID files, logs, work dirs)."""

    root: Path = DEFAULT_ROOT
    master_port: int = MASTER_PORT
    master_webui_port: int = LOCAL_MASTER_WEBUI_PORT
    worker_webui_ports: tuple[int, ...] = field(default=LOCAL_WORKER_WEBUI_PORTS)

    @classmethod
    def on_free_ports(cls, root: Path) -> Cluster:
        master_port, master_webui_port, *worker_webui_ports = free_ports(2 + WORKERS)
        return cls(root, master_port, master_webui_port, tuple(worker_webui_ports))

    @classmethod
    def start_on_free_ports(cls, root: Path, attempts: int = 3) -> Cluster:
        """Start a cluster on free ports under root/attempt-N. A port free when picked can be
        taken before the master binds it (another test's server): then try new ports."""
        for attempt in range(1, attempts):
            cluster = cls.on_free_ports(root / f"attempt-{attempt}")
            try:
                cluster.start()
                return cluster
            except PortTakenError as error:
                print(f"{error}: trying other ports")
        cluster = cls.on_free_ports(root / f"attempt-{attempts}")
        cluster.start()
        return cluster

    @property
    def master_url(self) -> str:
        return f"spark://{HOST}:{self.master_port}"

    @property
    def spark_class(self) -> str:
        return str(spark_home() / "bin" / "spark-class")

    def work_dir(self, index: int) -> Path:
        return self.root / f"worker-{index}"

    def processes(self) -> dict[str, tuple[list[str], dict[str, str]]]:
        """Name -> (command, environment) of every process of the cluster."""
        procs = {
            "master": (
                master_command(HOST, self.master_port, self.master_webui_port, self.spark_class),
                daemon_environment(self.root),
            )
        }
        for index, webui_port in enumerate(self.worker_webui_ports, start=1):
            work_dir = str(self.work_dir(index))
            procs[f"worker-{index}"] = (
                worker_command(self.master_url, webui_port, work_dir, HOST, self.spark_class),
                daemon_environment(self.root, SPARK_WORKER_DIR=work_dir, SPARK_WORKER_OPTS=WORKER_OPTS),
            )
        return procs

    def names(self) -> list[str]:
        return ["master", *(f"worker-{index}" for index in range(1, len(self.worker_webui_ports) + 1))]

    def pid_file(self, name: str) -> Path:
        return self.root / f"{name}.pid"

    def running(self) -> dict[str, int]:
        alive = {}
        for name in self.names():
            pid_file = self.pid_file(name)
            if pid_file.exists():
                pid = int(pid_file.read_text())
                try:
                    os.kill(pid, 0)
                    alive[name] = pid
                except ProcessLookupError:
                    pid_file.unlink()
        return alive

    def master_state(self) -> dict | None:
        """The master's JSON status page; None while nothing answers on its web UI port.
        Raises PortTakenError when something else does."""
        url = f"http://{HOST}:{self.master_webui_port}/json/"
        try:
            with urllib.request.urlopen(url, timeout=5) as response:
                body = response.read()
        except OSError:
            return None
        try:
            state = json.loads(body)
        except ValueError:
            state = {}
        if state.get("url") != self.master_url:
            raise PortTakenError(
                f"{url} answers, but not as the master {self.master_url}: another process holds "
                f"port {self.master_webui_port} or {self.master_port}; see {self.root}/logs/master.out"
            )
        return state

    def alive_workers(self) -> int:
        state = self.master_state() or {}
        return sum(1 for worker in state.get("workers", []) if worker.get("state") == "ALIVE")

    def start(self, timeout: float = 120.0) -> None:
        """Start the master, then the workers; return once every worker has registered."""
        if self.running():
            raise RuntimeError(f"a cluster is already running from {self.root}: stop it first")
        (self.root / "conf").mkdir(parents=True, exist_ok=True)
        (self.root / "logs").mkdir(exist_ok=True)
        deadline = time.monotonic() + timeout
        launched: list[str] = []
        for name in self.names():
            self.launch(name)
            launched.append(name)
            if name == "master":
                self._wait(lambda: _listening(self.master_port), deadline, "the master's port", launched)
        self._wait(
            lambda: self.alive_workers() == WORKERS, deadline, f"{WORKERS} workers to register", launched
        )

    def launch(self, name: str) -> None:
        """Start one process of the cluster (master or worker-N) in its own process group."""
        command, env = self.processes()[name]
        if name != "master":
            Path(env["SPARK_WORKER_DIR"]).mkdir(exist_ok=True)
        with (self.root / "logs" / f"{name}.out").open("ab") as log:
            process = subprocess.Popen(
                command,
                env=env,
                cwd=self.root,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self.pid_file(name).write_text(str(process.pid))

    def kill(self, name: str) -> None:
        """SIGKILL one process's group (a worker and the executors it runs), as a lost machine."""
        pid = self.running()[name]
        _signal_group(pid, signal.SIGKILL)
        while _group_alive(pid):
            time.sleep(0.1)
        self.pid_file(name).unlink(missing_ok=True)

    def _wait(self, ready, deadline: float, what: str, launched: list[str]) -> None:
        while not self._ready(ready):
            if not set(launched) <= set(self.running()):
                self.stop()
                raise RuntimeError(f"a cluster process exited while waiting for {what}; see {self.root}/logs")
            if time.monotonic() > deadline:
                self.stop()
                raise TimeoutError(f"timed out waiting for {what}; see {self.root}/logs")
            time.sleep(0.5)

    def stop(self, timeout: float = 30.0) -> None:
        """SIGTERM each process group the cluster started, SIGKILL what is left."""
        running = self.running()
        for pid in running.values():
            _signal_group(pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        for name, pid in running.items():
            while _group_alive(pid) and time.monotonic() < deadline:
                time.sleep(0.2)
            _signal_group(pid, signal.SIGKILL)
            self.pid_file(name).unlink(missing_ok=True)

    def _ready(self, ready) -> bool:
        try:
            return ready()
        except PortTakenError:
            self.stop()
            raise


class PortTakenError(RuntimeError):
    """A port picked for the cluster was bound by another process before the cluster."""


def _listening(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex((HOST, port)) == 0


def _signal_group(pid: int, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pid, sig)


def _group_alive(pid: int) -> bool:
    # A process this one started (the test fixture) stays a zombie, which signals still
    # reach, until it is reaped.
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, os.WNOHANG)
    try:
        os.killpg(pid, 0)
        return True
    except ProcessLookupError:
        return False


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tools.spark_cluster", description=__doc__.split("\n")[0])
    parser.add_argument("action", choices=("up", "down"))
    parser.add_argument("--root", type=Path, default=DEFAULT_ROOT, help="PID files, logs and work dirs")
    args = parser.parse_args(argv)
    cluster = Cluster(args.root)
    if args.action == "down":
        if not cluster.running():
            print(f"The Spark cluster is not running (no PID files in {args.root})")
            return 0
        cluster.stop()
        print("Spark cluster stopped")
        return 0
    if cluster.running():
        print(f"The Spark cluster is already running: {cluster.master_url}")
        return 0
    cluster.start()
    print(
        f"Spark cluster up: {cluster.master_url} ({WORKERS} workers, {WORKER_CORES} core each), "
        f"UI http://{HOST}:{cluster.master_webui_port}, logs {args.root}/logs. Stop it with: make down"
    )
    from tools import executor_env

    print("Airflow's tasks run on it with:")
    for name, value in airflow_environment(cluster, executor_env.build()).items():
        print(f"  export {name}={shlex.quote(value)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
