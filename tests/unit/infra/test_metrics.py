"""Metric definitions, bounded labels, the association table, its port and redaction."""

from __future__ import annotations

import socket

import httpx
import pytest
from prometheus_client import REGISTRY
from pydantic import SecretStr

from infra import metrics
from infra.settings import AuthSettings, Settings


def test_an_unregistered_calling_ae_is_labelled_other() -> None:
    registered = {"CT1"}.__contains__
    assert metrics.ae_label("CT1  ", registered) == "CT1"
    assert metrics.ae_label("RANDOM-1234", registered) == metrics.OTHER_AE
    assert metrics.ae_label("", registered) == metrics.OTHER_AE


@pytest.mark.parametrize(
    ("status", "label"),
    [
        (0x0000, "success"),
        (0xFF00, "pending"),
        (0xFE00, "cancel"),
        (0xB000, "warning"),
        (0x0001, "warning"),
        (0xA700, "failure"),
        (0xC123, "failure"),
        (0x0122, "failure"),
    ],
)
def test_dimse_statuses_become_their_class(status: int, label: str) -> None:
    assert metrics.status_label(status) == label


def test_every_metric_is_in_the_default_registry() -> None:
    names = {m.name for m in REGISTRY.collect()}
    for name in (
        "pacs_dimse_associations_open",
        "pacs_dimse_associations",
        "pacs_dimse_operations",
        "pacs_dimse_cstore_seconds",
        "pacs_dimse_received_bytes",
    ):
        assert name in names


def test_the_table_lists_open_associations_until_closed() -> None:
    table = metrics.AssociationTable()
    table.opened(1, "CT1", "10.0.0.5:4000")
    table.operation(1, 1000)
    table.operation(1, 24)
    assert table.snapshot() == [
        {
            "calling_ae": "CT1",
            "address": "10.0.0.5:4000",
            "since": pytest.approx(table.snapshot()[0]["since"]),
            "operations": 2,
            "bytes_received": 1024,
        }
    ]
    assert table.closed(1) is not None
    assert table.closed(1) is None
    assert table.snapshot() == []


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _free_pair() -> int:
    """A port whose next port is free too (the test needs both; any process may hold one)."""
    for _ in range(50):
        port = _free_port()
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port + 1))
            except OSError:
                continue
        return port
    raise AssertionError("no two adjacent free ports")


def test_the_metrics_port_serves_metrics_and_associations() -> None:
    table = metrics.AssociationTable()
    table.opened(7, "MR2", "127.0.0.1:5000")
    port = _free_port()
    server = metrics.serve_metrics(port, associations=table)
    assert server is not None
    try:
        text = httpx.get(f"http://127.0.0.1:{port}/metrics").text
        assert "# TYPE pacs_dimse_cstore_seconds histogram" in text
        rows = httpx.get(f"http://127.0.0.1:{port}/associations").json()
        assert [row["calling_ae"] for row in rows] == ["MR2"]
    finally:
        server.shutdown()
        server.server_close()


def test_a_second_process_takes_the_next_port() -> None:
    port = _free_pair()
    first = metrics.serve_metrics_from("127.0.0.1", port, 2)
    second = metrics.serve_metrics_from("127.0.0.1", port, 2)
    try:
        assert first is not None and second is not None
        assert second.server_port == port + 1
        with pytest.raises(OSError, match="no free metrics port"):
            metrics.serve_metrics_from("127.0.0.1", port, 2)
    finally:
        for server in (first, second):
            if server is not None:
                server.shutdown()
                server.server_close()


def test_zero_means_no_metrics_port() -> None:
    assert metrics.serve_metrics(0) is None
    assert metrics.serve_metrics_from("127.0.0.1", 0, 3) is None


def test_settings_shown_have_every_secret_redacted() -> None:
    settings = Settings(
        auth=AuthSettings(
            admin_password=SecretStr("hunter2-admin"),
            token_key=SecretStr("k" * 40),
            deidentify_key=SecretStr("d" * 40),
        )
    )
    shown = metrics.redacted(settings.model_dump(mode="json"))
    text = repr(shown)
    assert "hunter2-admin" not in text and "k" * 40 not in text and "d" * 40 not in text
    assert shown["auth"]["admin_password"] == metrics.REDACTED
    assert shown["auth"]["token_key"] == metrics.REDACTED
    assert shown["dicom"]["port"] == settings.dicom.port  # the rest is shown as it is


def test_a_plain_string_password_field_is_redacted_too() -> None:
    shown = metrics.redacted(
        {"s3": {"secret_key": "plain", "endpoint": "x:1"}, "n": [{"api_key": "v"}]}
    )
    assert shown == {
        "s3": {"secret_key": metrics.REDACTED, "endpoint": "x:1"},
        "n": [{"api_key": metrics.REDACTED}],
    }
