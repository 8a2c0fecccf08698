"""A long-lived local Spark driver that runs the batch jobs on request: the
`job_server` compute backend (plugins/fhir_pipeline/job_server_job.py).

A spark-submit starts a JVM per task, and for a small day that start (class loading,
JIT warm-up, code generation) is most of the task's time. This server keeps one driver
warm and runs each job in it, in a session of its own (`SparkSession.newSession()`: the
job's SQL settings, including its SESSION_CONF, and its temporary views are its own; the
SparkContext, its jars and its Hadoop credentials are shared):

    python -m spark_jobs.job_server --port 8998

POST /jobs with {"job": "<spark_jobs module>", "args": [...], "lineage": {"parent": ...,
"root": ...}} (lineage optional: the task's OpenLineage run, spark_jobs.lineage) streams the job's log
lines as text and ends with the line `exit status: <n>`: 0, or fhir_contract's
EXIT_SKIPPED / EXIT_PERMANENT, or 1 for any other failure. A client that goes away
interrupts its job. GET /health answers `ok`.

Like a Spark Connect server it runs with its own environment: the PHI key, storage
credentials and MLflow URI it was started with serve every job, and per-job JVM options
cannot apply. It listens on 127.0.0.1 by default and serves one machine's local and small
runs; clusters and Databricks use the spark_submit and databricks backends.
"""

from __future__ import annotations

import argparse
import contextvars
import importlib
import json
import logging
import queue
import select
import signal
import socket
import threading
from functools import partial
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from pyspark.sql import SparkSession

from fhir_contract import BATCH_JOBS, EXIT_PERMANENT, SERVER_EXIT_STATUS_PREFIX
from spark_jobs.lakehouse import configure_logging, job_exit_status
from spark_jobs.session import build_spark_session

log = logging.getLogger("fhir_job_server")

# The jobs a task may run here: the streaming job runs apart, supervised.
JOBS = BATCH_JOBS
DEFAULT_PORT = 8998

# Where the log records of the job running in this context go.
_job_lines: contextvars.ContextVar[queue.Queue | None] = contextvars.ContextVar("job_lines", default=None)


class JobLogHandler(logging.Handler):
    """Sends each log record made in a job's context (its threads included: lakehouse
    run_concurrently passes the context on) to that job's response."""

    def emit(self, record: logging.LogRecord) -> None:
        lines = _job_lines.get()
        if lines is not None:
            lines.put(self.format(record))


def job_session(base: SparkSession, conf: dict[str, str]) -> SparkSession:
    """A new session on the server's SparkContext with a job's own settings. Hadoop
    settings (`spark.hadoop.<key>`) apply per session under their plain key."""
    session = base.newSession()
    for key, value in conf.items():
        session.conf.set(key.removeprefix("spark.hadoop."), value)
    return session


def run_in_session(module, args: list[str], session: SparkSession, lineage: dict[str, str]) -> int:
    """Run one job module's main in `session`; its exit status as spark-submit would see it."""
    job = module.__name__
    try:
        return job_exit_status(partial(module.main, args, session), lineage)
    except SystemExit as exc:  # argparse: usage errors, printed to the server's log
        log.error("%s: invalid arguments %s (see its --help)", job, args)
        return exc.code if isinstance(exc.code, int) else EXIT_PERMANENT
    except Exception:
        log.exception("%s failed", job)
        return 1


def client_gone(connection: socket.socket) -> bool:
    """True when the client closed its end (it sends nothing after its request)."""
    readable, _, _ = select.select([connection], [], [], 0)
    return bool(readable) and connection.recv(1, socket.MSG_PEEK) == b""


class JobServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, address: tuple[str, int], spark: SparkSession) -> None:
        super().__init__(address, JobRequestHandler)
        self.spark = spark
        self.running = 0
        self.lock = threading.Lock()

    def job_finished(self) -> None:
        """Drop what the jobs left cached once none is running (a failed job skips its unpersist)."""
        with self.lock:
            self.running -= 1
            if not self.running:
                self.spark.catalog.clearCache()


class JobRequestHandler(BaseHTTPRequestHandler):
    server: JobServer

    def do_GET(self) -> None:
        if self.path != "/health":
            self.send_error(404)
            return
        self._start(200)
        self.wfile.write(b"ok\n")

    def do_POST(self) -> None:
        if self.path != "/jobs":
            self.send_error(404)
            return
        try:
            request = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))))
            job, args = request["job"], [str(a) for a in request.get("args", [])]
            lineage = {k: str(v) for k, v in request.get("lineage", {}).items() if k in ("parent", "root")}
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            self.send_error(400, f"expected JSON {{'job': ..., 'args': [...]}}: {exc}")
            return
        if job not in JOBS:
            self.send_error(400, f"unknown job {job!r}; this server runs {sorted(JOBS)}")
            return
        self._start(200)
        status = self._run(job, args, lineage)
        self._write(f"{SERVER_EXIT_STATUS_PREFIX}{status}")

    def _run(self, job: str, args: list[str], lineage: dict[str, str]) -> int:
        module = importlib.import_module(f"spark_jobs.{job}")
        session = job_session(self.server.spark, getattr(module, "SESSION_CONF", {}))
        lines: queue.Queue = queue.Queue()
        context = contextvars.copy_context()
        context.run(_job_lines.set, lines)
        result: list[int] = []
        worker = threading.Thread(
            target=lambda: result.append(context.run(run_in_session, module, args, session, lineage)),
            name=f"job-{job}",
        )
        with self.server.lock:
            self.server.running += 1
        log.info("spark_jobs.%s %s: started", job, " ".join(args))
        worker.start()
        connected = True
        try:
            while worker.is_alive() or not lines.empty():
                try:
                    line = lines.get(timeout=1)
                except queue.Empty:
                    if connected and client_gone(self.connection):
                        connected = False
                        log.warning("spark_jobs.%s: its client went away; interrupting it", job)
                    if not connected:
                        session.interruptAll()
                    continue
                connected = connected and self._write(line)
            worker.join()
        finally:
            self.server.job_finished()
        status = result[0] if result else 1
        log.info("spark_jobs.%s: %s%d", job, SERVER_EXIT_STATUS_PREFIX, status)
        return status

    def _start(self, code: int) -> None:
        self.send_response(code)
        self.send_header("Content-Type", "text/plain; charset=utf-8")
        self.end_headers()

    def _write(self, line: str) -> bool:
        try:
            self.wfile.write(line.encode() + b"\n")
            self.wfile.flush()
            return True
        except OSError:
            return False

    def log_message(self, format: str, *args) -> None:  # noqa: A002 - the base class's name
        log.debug(format, *args)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="job_server", description=__doc__.split("\n")[0])
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=DEFAULT_PORT, help=f"port (default {DEFAULT_PORT})")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    configure_logging()
    handler = JobLogHandler()
    handler.setFormatter(logging.getLogger().handlers[0].formatter)
    logging.getLogger().addHandler(handler)
    args = parse_args(argv)
    spark = build_spark_session("fhir-job-server")
    server = JobServer((args.host, args.port), spark)
    signal.signal(signal.SIGTERM, lambda *_: threading.Thread(target=server.shutdown).start())
    log.info("Job server on http://%s:%d (Spark %s)", args.host, server.server_port, spark.version)
    try:
        server.serve_forever()
    finally:
        server.server_close()
        spark.stop()


if __name__ == "__main__":
    main()
