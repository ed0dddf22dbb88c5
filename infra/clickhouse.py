"""ClickHouse: the thread-safe client every read model writes and queries through.

With the embedded chDB engine a data directory can be opened by one process at a time, so
in the embedded shape the API process owns it and runs the projectors; the same code talks
to a ClickHouse server over HTTP when the DSN says so.
"""

from __future__ import annotations

import threading
from typing import Any

import clickhouse_connect
from clickhouse_connect.driver.client import Client

from infra.settings import RemoteTlsSettings
from infra.tls.remote import clickhouse_options


class ClickHouse:
    """A thread-safe wrapper: chDB sessions must not be used from two threads at once."""

    def __init__(self, dsn: str, tls: RemoteTlsSettings | None = None) -> None:
        self.dsn = dsn
        options = clickhouse_options(dsn, tls) if tls is not None else {}
        self._client: Client = clickhouse_connect.get_client(dsn=dsn, **options)
        self._lock = threading.Lock()

    def command(self, sql: str, parameters: dict[str, Any] | None = None) -> Any:
        with self._lock:
            return self._client.command(sql, parameters=parameters)

    def rows(self, sql: str, parameters: dict[str, Any] | None = None) -> list[tuple[Any, ...]]:
        with self._lock:
            return [
                tuple(row) for row in self._client.query(sql, parameters=parameters).result_rows
            ]

    def insert(self, table: str, rows: list[list[Any]], columns: list[str]) -> None:
        with self._lock:
            self._client.insert(table, rows, column_names=columns)

    def close(self) -> None:
        with self._lock:
            self._client.close()
