"""Metric definitions, bounded labels, the association table, its port and redaction."""

from __future__ import annotations

import socket
import time
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from aiokafka.structs import ConsumerRecord
from fastapi import FastAPI
from prometheus_client import REGISTRY
from pydantic import SecretStr

from activities.storage import observe_archive_lag
from api import timing as api_timing
from api.timing import RequestTiming
from infra import metrics
from infra.eventlog import newest_timestamp
from infra.readmodels.runner import _note_lag
from infra.settings import AuthSettings, Settings
from schemas.events import InstanceRef, InstanceStored
from schemas.workflows import LandedInstance


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


def test_the_landing_backlog_is_recounted_at_most_every_few_seconds() -> None:
    calls: list[int] = []

    def count() -> int:  # 3 at first, 7 from the second count on
        calls.append(1)
        return 3 if len(calls) == 1 else 7

    backlog = metrics.LandingBacklog({"spool": count}, every=0.2)
    gauge = "pacs_landing_backlog_instances"
    assert REGISTRY.get_sample_value(gauge, {"landing": "spool"}) == 3
    assert REGISTRY.get_sample_value(gauge, {"landing": "spool"}) == 3  # cached
    assert len(calls) == 1
    time.sleep(0.25)
    assert backlog.count("spool") == 7


def test_the_archive_lag_counts_what_was_archived_from_its_arrival() -> None:
    ref = InstanceRef(
        study_instance_uid="1.2", series_instance_uid="1.2.3", sop_instance_uid="1.2.3.4",
        sop_class_uid="1.2.840.10008.5.1.4.1.1.2", sha256="a" * 64, size=10,
    )  # fmt: skip
    arrived = datetime.now(UTC) - timedelta(seconds=42)
    done = LandedInstance(
        instance=ref,
        landing_mode="spool",
        landing_key="k",
        transfer_syntax_uid="1.2.840.10008.1.2.1",
        received_at=arrived,
    )
    gone = done.model_copy(update={"instance": ref.model_copy(update={"sop_instance_uid": "9"})})
    older = done.model_copy(update={"received_at": None})  # from before the field existed
    stored = InstanceStored(instance=ref, bucket="b", archive_key="1.2/1.2.3/1.2.3.4")
    count = REGISTRY.get_sample_value("pacs_archive_lag_seconds_count") or 0.0
    total = REGISTRY.get_sample_value("pacs_archive_lag_seconds_sum") or 0.0
    observe_archive_lag([done, gone, older], [stored])
    assert REGISTRY.get_sample_value("pacs_archive_lag_seconds_count") == count + 1
    grown = (REGISTRY.get_sample_value("pacs_archive_lag_seconds_sum") or 0.0) - total
    assert 41 < grown < 60


def test_projector_lag_is_the_newest_applied_events_age_and_zero_when_caught_up() -> None:
    now_ms = int(time.time() * 1000)
    records = [
        ConsumerRecord(
            topic="t",
            partition=0,
            offset=i,
            timestamp=now_ms - age,
            timestamp_type=0,
            key=None,
            value=b"",
            checksum=None,
            serialized_key_size=0,
            serialized_value_size=0,
            headers=(),
        )
        for i, age in enumerate((30_000, 12_000))
    ]
    _note_lag(newest_timestamp([records]))
    assert 11 < (REGISTRY.get_sample_value("pacs_projector_lag_seconds") or 0) < 20
    _note_lag(None)
    assert REGISTRY.get_sample_value("pacs_projector_lag_seconds") == 0


async def test_requests_are_timed_by_route_template_never_by_url() -> None:
    app = FastAPI()

    @app.get("/studies/{study}")
    async def one(study: str) -> dict[str, str]:
        return {"study": study}

    timed = RequestTiming(app)
    transport = httpx.ASGITransport(app=timed)
    name = "pacs_http_request_seconds_count"
    ok = {"route": "/studies/{study}", "method": "GET", "status": "2xx"}
    missing = {"route": api_timing.UNMATCHED, "method": "GET", "status": "4xx"}
    before = [REGISTRY.get_sample_value(name, labels) or 0 for labels in (ok, missing)]
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        assert (await client.get("/studies/1.2.3")).status_code == 200
        assert (await client.get("/studies/4.5.6")).status_code == 200
        assert (await client.get("/nothing/here")).status_code == 404
    after = [REGISTRY.get_sample_value(name, labels) or 0 for labels in (ok, missing)]
    assert [b - a for a, b in zip(before, after, strict=True)] == [2, 1]
    routes = {s.labels.get("route") for m in REGISTRY.collect() for s in m.samples}
    assert "/studies/1.2.3" not in routes and "/nothing/here" not in routes
