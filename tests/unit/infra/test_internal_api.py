"""The gateway's catalog client: kept-alive connections, one retry, errors by cause."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from infra.internal_api import CatalogClient, CatalogRefused, CatalogUnavailable


class FakeApi(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as uvicorn
    connections: set[int] = set()  # client ports seen
    answers: list[tuple[int, object]] = []
    close_after_answer = False

    def do_POST(self) -> None:
        FakeApi.connections.add(self.client_address[1])
        request = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        status, body = FakeApi.answers.pop(0) if FakeApi.answers else (200, [request])
        payload = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)
        if FakeApi.close_after_answer:
            self.close_connection = True

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def api() -> Iterator[str]:
    FakeApi.connections = set()
    FakeApi.answers = []
    FakeApi.close_after_answer = False
    server = ThreadingHTTPServer(("127.0.0.1", 0), FakeApi)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_queries_reuse_one_connection(api: str) -> None:
    client = CatalogClient(api)
    for n in range(5):
        (echoed,) = client.find("STUDY", {"PatientID": f"P{n}"}, ["PatientID"], limit=10)
        assert echoed["filters"] == {"PatientID": f"P{n}"}
    assert len(FakeApi.connections) == 1
    client.close()


def test_a_connection_the_server_closed_is_replaced_once(api: str) -> None:
    client = CatalogClient(api)
    FakeApi.close_after_answer = True
    for _ in range(3):
        assert client.find("STUDY", {}, [], limit=10)  # each pooled connection is dead on next use
    assert len(FakeApi.connections) == 3
    client.close()


def test_refusals_carry_the_reason_and_failures_say_unavailable(api: str) -> None:
    client = CatalogClient(api)
    FakeApi.answers = [(400, {"detail": "StudyDate: '2025' is not a date (YYYYMMDD)"})]
    with pytest.raises(CatalogRefused, match="is not a date"):
        client.find("STUDY", {"StudyDate": "2025"}, [], limit=10)
    FakeApi.answers = [(503, {"detail": "not ready"})]
    with pytest.raises(CatalogUnavailable, match="503"):
        client.find("STUDY", {}, [], limit=10)
    client.close()


def test_nothing_listening_is_unavailable() -> None:
    client = CatalogClient("http://127.0.0.1:9", timeout=2)
    with pytest.raises(CatalogUnavailable, match="unreachable"):
        client.find("STUDY", {}, [], limit=10)
