"""Observability on the real platform: the gateway's /metrics after DCMTK's storescu, the
open associations an ops user sees, and the system page with its secrets redacted."""

from __future__ import annotations

from pathlib import Path

import httpx
import pydicom
import pytest
from prometheus_client.parser import text_string_to_metric_families
from pynetdicom import AE
from pynetdicom.sop_class import Verification  # type: ignore[attr-defined]

from infra.auth.tokens import token_key
from tests.dicom_factory import ct_series, write_series
from tests.integration.conftest import ADMIN_PASSWORD, Platform, eventually, run

pytestmark = pytest.mark.integration

CALLING = "METRICSCU"


Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def parsed(text: str) -> Samples:
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def port_metrics(platform: Platform, port: int) -> Samples:
    cfg = platform.settings.metrics
    return parsed(httpx.get(f"http://{cfg.host}:{port}/metrics", timeout=10).text)


def gateway_metrics(platform: Platform) -> Samples:
    """Every sample of the gateway's metrics port, by name and labels."""
    return port_metrics(platform, platform.settings.metrics.gateway_port)


def api_metrics(platform: Platform) -> Samples:
    response = platform.get("/metrics")
    response.raise_for_status()
    return parsed(response.text)


def sample(values: Samples, name: str, **labels: str) -> float:
    return values.get((name, tuple(sorted(labels.items()))), 0.0)


def storescu(platform: Platform, *paths: Path, calling: str = CALLING) -> None:
    host, port = platform.dicom
    result = run(["storescu", "-aec", "PACS", "-aet", calling, host, str(port), *map(str, paths)])
    assert result.returncode == 0, result.stderr[-2000:]


async def test_storescu_shows_in_the_gateway_metrics(
    platform: Platform, dcmtk: None, tmp_path: Path
) -> None:
    body = {"ae_title": CALLING, "host": "127.0.0.1", "port": 104}
    assert platform.client().put("/api/nodes/metrics-scu", json=body).status_code == 200
    host, port = platform.dicom

    def labelled_by_its_name() -> bool:
        # The gateway refreshes its copy of the registry every few seconds: until then the
        # title is not a registered node and counts as "other".
        assert run(["echoscu", "-aec", "PACS", "-aet", CALLING, host, str(port)]).returncode == 0
        return (
            sample(gateway_metrics(platform), "pacs_dimse_associations_total", calling_ae=CALLING)
            > 0
        )

    await eventually(labelled_by_its_name, timeout=30, interval=1)
    files = write_series(tmp_path / "ct", ct_series(3))
    before = gateway_metrics(platform)
    storescu(platform, *files)
    after = gateway_metrics(platform)

    def grew(name: str, **labels: str) -> float:
        return sample(after, name, **labels) - sample(before, name, **labels)

    assert grew("pacs_dimse_associations_total", calling_ae=CALLING) == 1
    assert grew("pacs_dimse_operations_total", operation="C-STORE", status="success") == 3
    assert grew("pacs_dimse_cstore_seconds_count") == 3
    assert grew("pacs_dimse_cstore_seconds_bucket", le="+Inf") == 3
    assert grew("pacs_dimse_cstore_seconds_sum") > 0
    sent = sum(path.stat().st_size for path in files)
    # The data sets as sent: the files less their preamble and File Meta.
    assert 0.9 * sent < grew("pacs_dimse_received_bytes_total") < sent
    assert sample(after, "pacs_dimse_associations_open", calling_ae=CALLING) == 0
    # C-FIND is counted too, whichever path answers it (find_responder.py sends as bytes).
    study = pydicom.dcmread(files[0], stop_before_pixels=True).StudyInstanceUID
    keys = ["-k", "QueryRetrieveLevel=STUDY", "-k", f"StudyInstanceUID={study}"]
    found = run(["findscu", "-S", "-aec", "PACS", "-aet", CALLING, *keys, host, str(port)])
    assert found.returncode == 0, found.stderr[-2000:]
    queried = gateway_metrics(platform)
    assert (
        sample(queried, "pacs_dimse_operations_total", operation="C-FIND", status="success")
        - sample(after, "pacs_dimse_operations_total", operation="C-FIND", status="success")
        == 1
    )
    # A refused object counts as a failure: a SOP Instance UID that is no UID.
    bad = pydicom.dcmread(files[0])
    bad.SOPInstanceUID = "not-a-uid"
    ae = AE(ae_title=CALLING)
    ae.add_requested_context(bad.SOPClassUID, bad.file_meta.TransferSyntaxUID)
    assoc = ae.associate(host, port, ae_title="PACS")
    assert assoc.is_established
    try:
        assert assoc.send_c_store(bad).Status != 0
    finally:
        assoc.release()
    failed = gateway_metrics(platform)
    assert (
        sample(failed, "pacs_dimse_operations_total", operation="C-STORE", status="failure")
        - sample(after, "pacs_dimse_operations_total", operation="C-STORE", status="failure")
        == 1
    )
    # A title nobody registered is never a label of its own.
    storescu(platform, files[0], calling="NOBODY-42")
    assert all("NOBODY-42" not in dict(labels).values() for _, labels in gateway_metrics(platform))


async def test_the_ingest_spine_reports_its_stages_and_lags(
    platform: Platform, dcmtk: None, tmp_path: Path
) -> None:
    """Landing, publish and the whole accept in the gateway; the archive lag in the worker;
    the landing backlog in the dispatcher; projector lag and QIDO latency in the API; the
    Temporal SDK's task latencies from the worker's runtime."""
    cfg = platform.settings.metrics
    files = write_series(tmp_path / "lag", ct_series(4))
    gateway_before = gateway_metrics(platform)
    worker_before = port_metrics(platform, cfg.worker_port)
    storescu(platform, *files, calling="LAGSCU")
    gateway_after = gateway_metrics(platform)

    def grew(name: str, **labels: str) -> float:
        return sample(gateway_after, name, **labels) - sample(gateway_before, name, **labels)

    assert grew("pacs_ingest_landing_seconds_count", via="dimse", landing="spool") == 4
    assert grew("pacs_ingest_publish_seconds_count", via="dimse") == 4
    assert grew("pacs_ingest_accept_seconds_count", via="dimse", status="success") == 4
    # Landing and publish are parts of the accept, which is part of the whole C-STORE.
    parts = grew("pacs_ingest_landing_seconds_sum", via="dimse", landing="spool") + grew(
        "pacs_ingest_publish_seconds_sum", via="dimse"
    )
    accept = grew("pacs_ingest_accept_seconds_sum", via="dimse", status="success")
    assert 0 < parts <= accept <= grew("pacs_dimse_cstore_seconds_sum")

    def archived() -> float:
        now = port_metrics(platform, cfg.worker_port)
        return sample(now, "pacs_archive_lag_seconds_count") - sample(
            worker_before, "pacs_archive_lag_seconds_count"
        )

    assert await eventually(lambda: archived() >= 4, timeout=60)
    dispatcher = port_metrics(platform, cfg.dispatcher_port)
    assert ("pacs_landing_backlog_instances", (("landing", "spool"),)) in dispatcher
    assert ("pacs_landing_backlog_instances", (("landing", "s3"),)) in dispatcher

    study = pydicom.dcmread(files[0], stop_before_pixels=True).StudyInstanceUID
    route = {"route": "/dicom-web/studies", "method": "GET", "status": "2xx"}
    before = sample(api_metrics(platform), "pacs_http_request_seconds_count", **route)
    found = platform.get("/dicom-web/studies", params={"StudyInstanceUID": study})
    assert found.status_code == 200
    api = api_metrics(platform)
    assert sample(api, "pacs_http_request_seconds_count", **route) == before + 1
    # Every URL asked of an unknown path is one label, not one each.
    assert platform.get("/no/such/path/1234").status_code == 404
    labels = {dict(key[1]).get("route") for key in api_metrics(platform)}
    assert "/no/such/path/1234" not in labels
    assert 0 <= sample(api, "pacs_projector_lag_seconds") < 60

    temporal = httpx.get(f"http://{cfg.host}:{cfg.workflow_port}/metrics", timeout=10).text
    assert "temporal_workflow_task_execution_latency" in temporal
    assert "temporal_activity_execution_latency" in temporal


def test_the_api_serves_its_metrics_to_metrics_readers_only(platform: Platform) -> None:
    response = platform.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    assert "process_cpu_seconds_total" in response.text
    assert httpx.get(f"{platform.http}/metrics", timeout=10).status_code == 401


def test_worker_and_dispatcher_metrics_ports_answer(platform: Platform) -> None:
    cfg = platform.settings.metrics
    for port in (cfg.worker_port, cfg.dispatcher_port):
        response = httpx.get(f"http://{cfg.host}:{port}/metrics", timeout=10)
        assert response.status_code == 200 and "python_info" in response.text


async def test_an_open_association_is_listed_until_released(platform: Platform) -> None:
    ae = AE(ae_title="HOLDOPEN")
    ae.add_requested_context(Verification)
    assoc = ae.associate(*platform.dicom, ae_title="PACS")
    assert assoc.is_established
    try:
        assert assoc.send_c_echo().Status == 0

        def listed() -> list[dict[str, object]]:
            rows = platform.get("/api/associations").json()
            return [row for row in rows if row["calling_ae"] == "HOLDOPEN"]

        (row,) = await eventually(listed, timeout=10)
        # Not a registered node: open under "other", never under its own title.
        held = gateway_metrics(platform)
        assert sample(held, "pacs_dimse_associations_open", calling_ae="other") >= 1
        assert sample(held, "pacs_dimse_associations_open", calling_ae="HOLDOPEN") == 0
        assert row["address"].startswith("127.0.0.1:")
        assert row["operations"] == 1
    finally:
        assoc.release()
    await eventually(lambda: not listed(), timeout=10)


def test_system_shows_version_parts_and_settings_without_secrets(platform: Platform) -> None:
    response = platform.get("/api/system")
    assert response.status_code == 200, response.text
    system = response.json()
    assert system["version"] and system["uptime_seconds"] > 0
    assert system["parts"]["broker"]["ok"] is True
    assert system["settings"]["dicom"]["port"] == platform.settings.dicom.port
    assert system["settings"]["auth"]["admin_password"] == "**********"
    assert ADMIN_PASSWORD not in response.text
    # The key that signs every token (here a file in the data dir, else the setting).
    key = token_key(platform.settings).decode(errors="replace")
    assert key not in response.text
