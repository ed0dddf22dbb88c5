"""The gateway's view of the read model: it asks the API process, which owns ClickHouse.

Plain `http.client` on a small pool of kept-alive connections (pynetdicom runs each
association's handlers in a thread of its own): a C-FIND spends about 0.7 ms less here
than through httpx, and C-FIND latency is what this client exists for.
"""

from __future__ import annotations

import http.client
import json
import socket
import threading
from typing import Any
from urllib.parse import urlsplit

from pydantic import TypeAdapter

from infra.settings import Settings
from schemas.catalog import CatalogInstance, InstanceQuery

MAX_IDLE = 8
_INSTANCES: TypeAdapter[list[CatalogInstance]] = TypeAdapter(list[CatalogInstance])


class CatalogRefused(ValueError):
    """The API refused the query (HTTP 4xx); the message is its reason."""


class CatalogUnavailable(ConnectionError):
    """The API could not be reached or failed (HTTP 5xx)."""


def api_base_url(settings: Settings) -> str:
    return f"http://{settings.http.host}:{settings.http.port}"


class CatalogClient:
    """Blocking and thread-safe; queries are reads, so a dropped keep-alive is retried once."""

    def __init__(self, base_url: str, timeout: float = 30.0) -> None:
        parts = urlsplit(base_url)
        self._host = parts.hostname or "127.0.0.1"
        self._port = parts.port or 80
        self._timeout = timeout
        self._idle: list[http.client.HTTPConnection] = []
        self._lock = threading.Lock()

    def instances(self, query: InstanceQuery) -> list[CatalogInstance]:
        """Every stored instance matching `query`, ordered by series then instance number."""
        body = self._post("/api/internal/instances", query.model_dump_json().encode())
        return _INSTANCES.validate_json(body)

    def find(
        self, level: str, filters: dict[str, str], keys: list[str], limit: int, offset: int = 0
    ) -> list[dict[str, Any]]:
        """One page of C-FIND matches (in the catalog's result order) as DICOM JSON datasets;
        CatalogRefused for a bad identifier."""
        payload = {
            "level": level,
            "filters": filters,
            "return_keys": keys,
            "limit": limit,
            "offset": offset,
        }
        matches: list[dict[str, Any]] = json.loads(
            self._post("/api/internal/find", json.dumps(payload).encode())
        )
        return matches

    def close(self) -> None:
        with self._lock:
            idle, self._idle = self._idle, []
        for connection in idle:
            connection.close()

    def _post(self, path: str, body: bytes) -> bytes:
        for attempt in (1, 2):
            connection: http.client.HTTPConnection | None = None
            try:
                connection = self._acquire()
                connection.request(
                    "POST", path, body=body, headers={"Content-Type": "application/json"}
                )
                response = connection.getresponse()
                content = response.read()
            except (OSError, http.client.HTTPException) as exc:
                if connection is not None:
                    connection.close()
                # Most often a kept-alive connection the server timed out: retry on a new one.
                if attempt == 2:
                    raise CatalogUnavailable(f"catalog unreachable: {exc!r}") from exc
                continue
            self._release(connection)
            if response.status >= 500:
                raise CatalogUnavailable(f"catalog failed: HTTP {response.status}")
            if response.status >= 400:
                raise CatalogRefused(_detail(content))
            return content
        raise AssertionError("unreachable")

    def _acquire(self) -> http.client.HTTPConnection:
        with self._lock:
            if self._idle:
                return self._idle.pop()
        connection = http.client.HTTPConnection(self._host, self._port, timeout=self._timeout)
        connection.connect()
        # Request and answer are one segment each; never wait for a delayed ACK.
        assert connection.sock is not None
        connection.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return connection

    def _release(self, connection: http.client.HTTPConnection) -> None:
        with self._lock:
            if len(self._idle) < MAX_IDLE:
                self._idle.append(connection)
                return
        connection.close()


def _detail(content: bytes) -> str:
    try:
        return str(json.loads(content).get("detail", content.decode(errors="replace")))
    except (ValueError, AttributeError):
        return content.decode(errors="replace")
