"""The one client of the API's internal routes: kept-alive connections, one retry, errors by
cause, and the worklist read model's coarse query as the route's query string."""

from __future__ import annotations

import datetime as dt
import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

import pytest

from infra.internal_api import ApiRefused, ApiUnavailable, InternalApi
from schemas.worklist import WorklistQuery


class FakeApi(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as uvicorn
    connections: set[int] = set()  # client ports seen
    answers: list[tuple[int, object]] = []
    paths: list[str] = []
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

    def do_GET(self) -> None:
        FakeApi.connections.add(self.client_address[1])
        FakeApi.paths.append(self.path)
        payload = json.dumps([]).encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def api() -> Iterator[str]:
    FakeApi.connections = set()
    FakeApi.answers = []
    FakeApi.paths = []
    FakeApi.close_after_answer = False
    server = ThreadingHTTPServer(("127.0.0.1", 0), FakeApi)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_queries_reuse_one_connection(api: str) -> None:
    client = InternalApi(api)
    for n in range(5):
        (echoed,) = client.find("STUDY", {"PatientID": f"P{n}"}, ["PatientID"], limit=10)
        assert echoed["filters"] == {"PatientID": f"P{n}"}
    assert len(FakeApi.connections) == 1
    client.close()


def test_a_connection_the_server_closed_is_replaced_once(api: str) -> None:
    client = InternalApi(api)
    FakeApi.close_after_answer = True
    for _ in range(3):
        assert client.find("STUDY", {}, [], limit=10)  # each pooled connection is dead on next use
    assert len(FakeApi.connections) == 3
    client.close()


def test_refusals_carry_the_reason_and_failures_say_unavailable(api: str) -> None:
    client = InternalApi(api)
    FakeApi.answers = [(400, {"detail": "StudyDate: '2025' is not a date (YYYYMMDD)"})]
    with pytest.raises(ApiRefused, match="is not a date"):
        client.find("STUDY", {"StudyDate": "2025"}, [], limit=10)
    FakeApi.answers = [(503, {"detail": "not ready"})]
    with pytest.raises(ApiUnavailable, match="503"):
        client.find("STUDY", {}, [], limit=10)
    client.close()


def test_nothing_listening_is_unavailable() -> None:
    client = InternalApi("http://127.0.0.1:9", timeout=2)
    with pytest.raises(ApiUnavailable, match="unreachable"):
        client.find("STUDY", {}, [], limit=10)


def test_worklist_query_is_sent_as_the_routes_parameters(api: str) -> None:
    client = InternalApi(api)
    query = WorklistQuery(
        accession_number="A 1&2", date_from=dt.date(2026, 12, 1), include_finished=True
    )
    assert client.worklist(query) == []
    (path,) = FakeApi.paths
    url = urlsplit(path)
    assert url.path == "/api/worklist"
    assert parse_qs(url.query) == {
        "accession_number": ["A 1&2"],
        "date_from": ["2026-12-01"],
        "include_cancelled": ["False"],
        "include_finished": ["True"],
        "limit": ["1000"],
    }
    client.close()


def test_several_stale_kept_alive_connections_do_not_fail_a_call(
    api: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The API closes idle connections (uvicorn after 5 s); with two of them in the pool,
    the retry must not take the second dead one (seen: a routing activity failing with
    RemoteDisconnected twice)."""
    monkeypatch.setattr("infra.internal_api.KEEP_IDLE_SECONDS", 3600.0)  # not noticed as old
    client = InternalApi(api)
    pooled = [client._acquire(), client._acquire()]
    for connection in pooled:
        client._release(connection)
    for connection in pooled:
        assert connection.sock is not None
        connection.sock.shutdown(2)  # as the server's close would leave it: dead on use
    assert client.nodes() == []
    assert len(FakeApi.connections) == 1  # served by one fresh connection


def test_a_connection_idle_past_the_servers_keep_alive_is_not_tried(
    api: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("infra.internal_api.KEEP_IDLE_SECONDS", 0.0)
    client = InternalApi(api)
    client.nodes()
    client.nodes()
    assert len(FakeApi.connections) == 2  # the first was dropped as too old, not reused
