"""The cluster's own start-up checks (the cluster end to end: tests/integration/test_cluster_e2e.py)."""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from tools import spark_cluster


def test_ports_picked_together_are_distinct():
    assert len(set(spark_cluster.free_ports(50))) == 50


@pytest.fixture
def spark_ui_stand_in():
    """An HTTP server answering every GET with HTML, as a Spark driver's UI does."""

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args):
            pass

        def do_GET(self):  # noqa: N802
            self.send_response(200)
            self.send_header("Content-Type", "text/html")
            self.end_headers()
            self.wfile.write(b"<!DOCTYPE html><html data-bs-theme='light'></html>")

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield server.server_port
    server.shutdown()


def test_a_web_ui_port_taken_by_another_server_is_named_and_nothing_is_left_running(
    tmp_path, spark_ui_stand_in
):
    master_port, *worker_webui_ports = spark_cluster.free_ports(1 + spark_cluster.WORKERS)
    cluster = spark_cluster.Cluster(tmp_path, master_port, spark_ui_stand_in, tuple(worker_webui_ports))
    with pytest.raises(spark_cluster.PortTakenError, match=f"another process holds port {spark_ui_stand_in}"):
        cluster.start()
    assert cluster.running() == {}
