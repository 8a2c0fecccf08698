"""Shared fixtures: one local SparkSession (Delta enabled) for the whole run,
and the public sample data copied into tests/fixtures/fhir-samples/ (see its SOURCES.md)."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from fhir_contract import LINEAGE_SETTINGS_ENV
from spark_jobs.session import build_spark_session

REPO = Path(__file__).resolve().parent.parent
SAMPLES = Path(__file__).parent / "fixtures" / "fhir-samples"

# Azurite's documented development account (public, not a secret).
AZURITE_ACCOUNT = "devstoreaccount1"
AZURITE_KEY = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="


# Lineage goes where a test sends it, never to the developer's .local/lineage (the
# Makefile exports a default transport).
for _setting in LINEAGE_SETTINGS_ENV:
    os.environ.pop(_setting, None)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def fake_spark_submit(folder: Path, exit_code: int, launch_file: Path | None = None) -> str:
    """A stand-in spark-submit binary in `folder` that exits `exit_code`, writing how it
    was launched (its arguments, working folder and environment) as JSON to
    `launch_file` when given."""
    script = folder / "spark-submit"
    launch = "{'argv': sys.argv[1:], 'cwd': os.getcwd(), 'env': dict(os.environ)}"
    record = f"json.dump({launch}, open({str(launch_file)!r}, 'w'))\n" if launch_file else ""
    script.write_text(f"#!{sys.executable}\nimport json, os, sys\n{record}sys.exit({exit_code})\n")
    script.chmod(0o755)
    return str(script)


def wait_for_port(port: int, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.2)
    raise TimeoutError(f"nothing listens on 127.0.0.1:{port} after {timeout}s")


@dataclass(frozen=True)
class Azurite:
    port: int

    @property
    def endpoint(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def connection_string(self) -> str:
        return (
            f"DefaultEndpointsProtocol=http;AccountName={AZURITE_ACCOUNT};AccountKey={AZURITE_KEY};"
            f"BlobEndpoint=http://127.0.0.1:{self.port}/{AZURITE_ACCOUNT};"
        )

    @property
    def spark_environment(self) -> dict[str, str]:
        """What spark_jobs.session.configure_azure_storage reads."""
        return {
            "FHIR_AZURE_STORAGE_ACCOUNT": AZURITE_ACCOUNT,
            "FHIR_AZURE_STORAGE_KEY": AZURITE_KEY,
            "FHIR_AZURE_STORAGE_ENDPOINT": self.endpoint,
        }

    def container(self, name: str):
        from azure.core.exceptions import ResourceExistsError
        from azure.storage.blob import BlobServiceClient

        service = BlobServiceClient.from_connection_string(self.connection_string)
        with contextlib.suppress(ResourceExistsError):
            service.create_container(name)
        return service.get_container_client(name)


@pytest.fixture(scope="session")
def azurite(tmp_path_factory):
    """A real Azurite blob service (npm package, installed by make setup) on a free port."""
    binary = REPO / "node_modules" / ".bin" / "azurite-blob"
    if not binary.exists():
        pytest.fail("Azurite is not installed: run `make setup`")
    port = free_port()
    process = subprocess.Popen(
        [
            str(binary),
            "--blobHost",
            "127.0.0.1",
            "--blobPort",
            str(port),
            "--location",
            str(tmp_path_factory.mktemp("azurite")),
            "--silent",
            "--skipApiVersionCheck",
            "--loose",
            "--disableTelemetry",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        wait_for_port(port)
        yield Azurite(port)
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=30)


def pytest_collection_modifyitems(config, items):
    """End-to-end files first. Under `make test` (two workers, `--dist loadfile
    --no-loadscope-reorder`) one worker then runs the Spark tests while the other waits
    on a scheduler, and no long end-to-end file is left to run alone at the end."""
    items.sort(key=lambda item: item.get_closest_marker("e2e") is None)


@pytest.fixture(scope="session")
def spark(tmp_path_factory):
    warehouse = tmp_path_factory.mktemp("spark-warehouse")
    session = build_spark_session(
        "fhir-lakehouse-tests",
        extra_conf={
            "spark.ui.enabled": "false",
            "spark.sql.warehouse.dir": str(warehouse),
        },
    )
    yield session
    session.stop()


@pytest.fixture(scope="session")
def hl7_examples() -> Path:
    """Official HL7 FHIR R4 examples, one resource or Bundle per file."""
    return SAMPLES / "hl7-r4-examples"


@pytest.fixture(scope="session")
def synthea_ndjson() -> Path:
    """A 9-patient Synthea bulk export (NDJSON per resource type)."""
    return SAMPLES / "synthea-ndjson-pathling"


class HttpReceiver:
    """A local HTTP endpoint that records every POST (a Slack webhook stand-in)."""

    def __init__(self):
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

        received = self.received = []

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_POST(self):  # noqa: N802
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                received.append({"path": self.path, "body": body.decode(), "headers": dict(self.headers)})
                self.send_response(200)
                self.send_header("Content-Type", "text/plain")
                self.end_headers()
                self.wfile.write(b"ok")

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_port
        import threading

        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"


class SmtpReceiver:
    """A real SMTP server (aiosmtpd) keeping the messages it accepts."""

    def __init__(self):
        from aiosmtpd.controller import Controller

        messages = self.messages = []

        class Handler:
            async def handle_DATA(self, server, session, envelope):  # noqa: N802
                messages.append(
                    {"from": envelope.mail_from, "to": envelope.rcpt_tos, "data": envelope.content.decode()}
                )
                return "250 OK"

        self.port = free_port()
        self.controller = Controller(Handler(), hostname="127.0.0.1", port=self.port)
        self.controller.start()


@pytest.fixture
def http_receiver():
    receiver = HttpReceiver()
    yield receiver
    receiver.server.shutdown()


@pytest.fixture
def smtp_receiver():
    receiver = SmtpReceiver()
    yield receiver
    receiver.controller.stop()


def alert_connections(http: HttpReceiver, smtp: SmtpReceiver) -> dict[str, str]:
    """Airflow connections (as environment variables) pointing the alert channels at the receivers."""
    import json

    return {
        "AIRFLOW_CONN_SLACK_DEFAULT": json.dumps(
            {"conn_type": "slackwebhook", "password": http.url("/services/T000/B000/XXXX")}
        ),
        "AIRFLOW_CONN_SMTP_DEFAULT": json.dumps(
            {
                "conn_type": "smtp",
                "host": "127.0.0.1",
                "port": smtp.port,
                "extra": {
                    "disable_ssl": True,
                    "disable_tls": True,
                    "from_email": "airflow@fhir.local",
                    "timeout": 10,
                    "retry_limit": 1,
                },
            }
        ),
    }
