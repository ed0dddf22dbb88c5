"""Modality workflow services against a real platform: MWL (DCMTK findscu), MPPS and
Storage Commitment (pynetdicom SCUs), with results checked through the REST API and Temporal."""

from __future__ import annotations

import logging
import socket
import sys
import threading
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from pydicom import dcmread
from pydicom.dataset import Dataset
from pydicom.uid import generate_uid
from pynetdicom import AE, evt
from pynetdicom.sop_class import (  # type: ignore[attr-defined]
    CTImageStorage,
    ModalityPerformedProcedureStep,
    StorageCommitmentPushModel,
    StorageCommitmentPushModelInstance,
)

from infra.dimse.nodelay import set_nodelay
from infra.settings import RemoteAE
from infra.temporal_client import connect_temporal
from tests.dicom_factory import ct_series
from tests.integration.conftest import (
    Platform,
    eventually,
    platform_settings,
    run,
    running_platform,
)
from workflows.storage_commitment import StorageCommitmentWorkflow

pytestmark = pytest.mark.integration
log = logging.getLogger(__name__)

REPORT_AE = "COMMITSCU"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


REPORT_PORT = _free_port()


@pytest.fixture(scope="module")
async def node(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Platform]:
    settings = platform_settings(tmp_path_factory.mktemp("modality"), base=16000)
    dicom = settings.dicom.model_copy(
        update={
            "remote_aes": {REPORT_AE: RemoteAE(host="127.0.0.1", port=REPORT_PORT)},
            "mpps_verify_timeout_seconds": 60.0,
        }
    )
    async with running_platform(settings.model_copy(update={"dicom": dicom})) as platform:
        yield platform


def schedule(node: Platform, **fields: Any) -> dict[str, Any]:
    step = {
        "step_id": fields.pop("step_id"),
        "station_ae_title": fields.pop("station"),
        "modality": fields.pop("modality"),
        "start_date": fields.pop("date"),
        "start_time": "09:30:00",
    }
    body = {
        "patient_name": "Doe^Jane",
        "patient_id": "P-" + step["step_id"],
        "accession_number": "ACC-" + step["step_id"],
        "scheduled_step": step,
        **fields,
    }
    response = node.post("/api/worklist", json=body, timeout=30)
    assert response.status_code == 201, response.text
    item: dict[str, Any] = response.json()
    return item


def findscu(node: Platform, out: Path, *keys: str) -> list[Dataset]:
    out.mkdir(parents=True, exist_ok=True)
    host, port = node.dicom
    argv = ["findscu", "-W", "-aec", "PACS", "-aet", "CT1", "-X", "-od", str(out)]
    for key in keys:
        argv += ["-k", key]
    argv += [
        "-k", "PatientName", "-k", "PatientID", "-k", "AccessionNumber", "-k", "StudyInstanceUID",
        "-k", "ScheduledProcedureStepSequence[0].ScheduledProcedureStepID",
        host, str(port),
    ]  # fmt: skip
    result = run(argv, timeout=60)
    assert result.returncode == 0, result.stderr
    return [dcmread(p) for p in sorted(out.glob("rsp*.dcm"))]


SPS = "ScheduledProcedureStepSequence[0]"


async def test_findscu_worklist_returns_exactly_the_matching_items(
    node: Platform, tmp_path: Path, dcmtk: None
) -> None:
    a = schedule(node, step_id="A", station="CT1", modality="CT", date="2024-03-05")
    schedule(node, step_id="B", station="CT1", modality="CT", date="2024-03-20")
    c = schedule(node, step_id="C", station="MR1", modality="MR", date="2024-03-05")
    d = schedule(node, step_id="D", station="CT1", modality="CT", date="2024-03-06")
    e = schedule(node, step_id="E", station="CT2", modality="CT", date="2024-03-05")
    with node.client(timeout=30) as api:
        cancelled = api.delete(f"/api/worklist/{d['item_id']}")
        assert cancelled.status_code == 200 and cancelled.json()["status"] == "cancelled"
        moved = {k: v for k, v in e.items() if k not in ("item_id", "status")}
        moved["scheduled_step"] = {
            **e["scheduled_step"],
            "station_ae_title": "CT1",
            "start_date": "2024-03-07",
        }
        updated = api.put(f"/api/worklist/{e['item_id']}", json=moved)
    assert updated.status_code == 200, updated.text

    found = findscu(
        node,
        tmp_path / "ct1",
        f"{SPS}.ScheduledStationAETitle=CT1",
        f"{SPS}.ScheduledProcedureStepStartDate=20240301-20240310",
        f"{SPS}.Modality=CT",
    )
    assert sorted(ds.AccessionNumber for ds in found) == ["ACC-A", "ACC-E"]
    by_accession = {ds.AccessionNumber: ds for ds in found}
    assert by_accession["ACC-A"].StudyInstanceUID == a["study_instance_uid"]
    assert by_accession["ACC-E"].ScheduledProcedureStepSequence[0].ScheduledStationAETitle == "CT1"

    mr = findscu(node, tmp_path / "mr", f"{SPS}.Modality=MR")
    assert [ds.AccessionNumber for ds in mr] == [c["accession_number"]]
    by_name = findscu(
        node,
        tmp_path / "name",
        "PatientName=doe*",
        f"{SPS}.ScheduledProcedureStepStartDate=-20240305",
    )
    assert sorted(ds.AccessionNumber for ds in by_name) == ["ACC-A", "ACC-C"]
    assert findscu(node, tmp_path / "none", f"{SPS}.ScheduledStationAETitle=XR9") == []


def _store(node: Platform, datasets: list[Dataset], calling_ae: str) -> None:
    ae = AE(ae_title=calling_ae)
    ae.add_requested_context(CTImageStorage)
    assoc = ae.associate(
        *node.dicom, ae_title="PACS", evt_handlers=[(evt.EVT_CONN_OPEN, set_nodelay)]
    )
    assert assoc.is_established
    try:
        for ds in datasets:
            assert assoc.send_c_store(ds).Status == 0
    finally:
        assoc.release()


def _mpps_create(study_uid: str, accession: str, step_id: str) -> Dataset:
    ds = Dataset()
    step = Dataset()
    step.StudyInstanceUID = study_uid
    step.AccessionNumber = accession
    step.ScheduledProcedureStepID = step_id
    step.RequestedProcedureID = ""
    ds.ScheduledStepAttributesSequence = [step]
    ds.PatientName = "Doe^Jane"
    ds.PatientID = "P-A"
    ds.Modality = "CT"
    ds.PerformedStationAETitle = "CT1"
    ds.PerformedProcedureStepID = "PPS1"
    ds.PerformedProcedureStepStartDate = "20240305"
    ds.PerformedProcedureStepStartTime = "093500"
    ds.PerformedProcedureStepStatus = "IN PROGRESS"
    ds.PerformedSeriesSequence = []
    return ds


def _mpps_complete(series_uid: str, sops: list[str]) -> Dataset:
    ds = Dataset()
    ds.PerformedProcedureStepStatus = "COMPLETED"
    ds.PerformedProcedureStepEndDate = "20240305"
    ds.PerformedProcedureStepEndTime = "094500"
    series = Dataset()
    series.SeriesInstanceUID = series_uid
    series.ReferencedImageSequence = []
    for sop in sops:
        ref = Dataset()
        ref.ReferencedSOPClassUID = CTImageStorage
        ref.ReferencedSOPInstanceUID = sop
        series.ReferencedImageSequence.append(ref)
    ds.PerformedSeriesSequence = [series]
    return ds


async def test_mpps_create_complete_then_refused_and_linked_to_the_worklist(node: Platform) -> None:
    item = schedule(node, step_id="M", station="CT1", modality="CT", date="2024-03-05")
    study = item["study_instance_uid"]
    images = list(ct_series(2, size=64, study_uid=study, patient_id="P-M"))
    _store(node, images, "CT1")
    uid = generate_uid()
    ae = AE(ae_title="CT1")
    ae.add_requested_context(ModalityPerformedProcedureStep)
    assoc = ae.associate(
        *node.dicom, ae_title="PACS", evt_handlers=[(evt.EVT_CONN_OPEN, set_nodelay)]
    )
    assert assoc.is_established
    try:
        created = _mpps_create(study, item["accession_number"], "M")
        status, _ = assoc.send_n_create(created, ModalityPerformedProcedureStep, uid)
        assert status.Status == 0x0000
        status, _ = assoc.send_n_create(created, ModalityPerformedProcedureStep, uid)
        assert status.Status == 0x0111  # duplicate SOP instance
        done = _mpps_complete(images[0].SeriesInstanceUID, [ds.SOPInstanceUID for ds in images])
        status, _ = assoc.send_n_set(done, ModalityPerformedProcedureStep, uid)
        assert status.Status == 0x0000
        status, _ = assoc.send_n_set(done, ModalityPerformedProcedureStep, uid)
        assert status.Status == 0x0110 and "COMPLETED" in status.ErrorComment
        status, _ = assoc.send_n_set(done, ModalityPerformedProcedureStep, generate_uid())
        assert status.Status == 0x0112
    finally:
        assoc.release()

    def verified() -> dict[str, Any] | None:
        view: dict[str, Any] = node.get(f"/api/mpps/{uid}", timeout=30).json()
        return view if view.get("verification") else None

    view = await eventually(verified, timeout=90)
    assert view["state"]["status"] == "COMPLETED"
    assert view["worklist_item_id"] == item["item_id"]
    assert view["verification"]["complete"] and view["verification"]["found"] == 2
    types = await eventually(
        lambda: (
            (t := [e["type"] for e in node.audit(study) if e["type"].startswith("pacs.mpps")])
            and "pacs.mpps.verified" in t
            and t
        ),
        timeout=30,
    )
    assert types == ["pacs.mpps.created", "pacs.mpps.completed", "pacs.mpps.verified"]
    assert node.get(f"/api/mpps/{generate_uid()}", timeout=30).status_code == 404


def _mpps_send(node: Platform, send: Any) -> int:
    """One association of the modality's MPPS SCU; `send(assoc)` returns a status dataset."""
    ae = AE(ae_title="CT1")
    ae.add_requested_context(ModalityPerformedProcedureStep)
    assoc = ae.associate(
        *node.dicom, ae_title="PACS", evt_handlers=[(evt.EVT_CONN_OPEN, set_nodelay)]
    )
    assert assoc.is_established
    try:
        status: int = send(assoc).Status
        return status
    finally:
        assoc.release()


@pytest.mark.parametrize("outcome", ["COMPLETED", "DISCONTINUED"])
async def test_a_performed_step_shows_started_then_leaves_the_worklist(
    node: Platform, tmp_path: Path, dcmtk: None, outcome: str
) -> None:
    station = {"COMPLETED": "CT7", "DISCONTINUED": "CT8"}[outcome]
    item = schedule(node, step_id=station + "S", station=station, modality="CT", date="2024-05-02")
    asked = iter(range(1000))

    def worklist(status: str = "") -> list[tuple[str, str]]:
        """What the modality's worklist query (DCMTK findscu -W) shows for its station."""
        found = findscu(
            node,
            tmp_path / f"q{next(asked)}",
            f"{SPS}.ScheduledStationAETitle={station}",
            f"{SPS}.ScheduledProcedureStepStatus={status}",
        )
        return [
            (ds.AccessionNumber, ds.ScheduledProcedureStepSequence[0].ScheduledProcedureStepStatus)
            for ds in found
        ]

    seen: list[list[tuple[str, str]]] = []

    async def shows(*expected: tuple[str, str]) -> None:
        try:
            await eventually(lambda: seen.append(worklist()) or seen[-1] == list(expected), 60)
        except AssertionError:
            raise AssertionError(f"findscu -W shows {seen[-1]}, not {list(expected)}") from None

    accession = item["accession_number"]
    # The POST waits only briefly for the read model; a stack just started may take longer.
    await shows((accession, "SCHEDULED"))
    uid = generate_uid()
    created = _mpps_create(item["study_instance_uid"], accession, station + "S")
    sent = _mpps_send(
        node, lambda a: a.send_n_create(created, ModalityPerformedProcedureStep, uid)[0]
    )
    assert sent == 0x0000
    await shows((accession, "STARTED"))

    final = Dataset()
    final.PerformedProcedureStepStatus = outcome
    sent = _mpps_send(node, lambda a: a.send_n_set(final, ModalityPerformedProcedureStep, uid)[0])
    assert sent == 0x0000
    await shows()  # no longer offered

    shown = node.get(f"/api/worklist/{item['item_id']}", timeout=30).json()
    assert shown["step_status"] == outcome and shown["performed_procedure_steps"] == [uid]
    listed = node.get("/api/worklist", params={"station_ae_title": station}, timeout=30)
    assert listed.json() == []
    # A RIS asking for finished steps by status still finds it.
    assert worklist(status=outcome) == [(accession, outcome)]


def _commit_request(tuid: str, datasets: list[Dataset], never_sent: str) -> Dataset:
    info = Dataset()
    info.TransactionUID = tuid
    refs = []
    never = [(CTImageStorage, never_sent)] if never_sent else []
    for sop_class, sop in [(ds.SOPClassUID, ds.SOPInstanceUID) for ds in datasets] + never:
        ref = Dataset()
        ref.ReferencedSOPClassUID = sop_class
        ref.ReferencedSOPInstanceUID = sop
        refs.append(ref)
    info.ReferencedSOPSequence = refs
    return info


def _lists(report: Dataset) -> tuple[list[str], list[tuple[str, int]]]:
    success = [r.ReferencedSOPInstanceUID for r in report.get("ReferencedSOPSequence", [])]
    failed = [
        (r.ReferencedSOPInstanceUID, r.FailureReason) for r in report.get("FailedSOPSequence", [])
    ]
    return sorted(success), failed


def _commit_on(assoc: Any, reports: list[Dataset], request: Dataset, within: float) -> float:
    """N-ACTION on `assoc`; seconds until its N-EVENT-REPORT arrived there (fails after
    `within`)."""
    count = len(reports)
    sent = time.monotonic()
    status, _ = assoc.send_n_action(
        request, 1, StorageCommitmentPushModel, StorageCommitmentPushModelInstance
    )
    assert status.Status == 0x0000
    while len(reports) == count and assoc.is_established:
        assert time.monotonic() - sent < within, f"no N-EVENT-REPORT within {within} s"
        time.sleep(0.05)
    assert len(reports) > count, "the association ended before the N-EVENT-REPORT"
    return time.monotonic() - sent


async def test_commitment_report_on_the_same_association(node: Platform) -> None:
    """A modality stores 2 images and asks, on the same association, to commit them and one
    it never sent: the report comes at once from what is stored (the never-sent one failed
    0x0112), not after the wait for instances still being archived."""
    images = list(ct_series(2, size=64))
    reports: list[Dataset] = []

    def on_report(event: Any) -> tuple[int, None]:
        reports.append(event.event_information)
        return 0x0000, None

    tuid, never = generate_uid(), generate_uid()
    ae = AE(ae_title="CT1")
    ae.add_requested_context(CTImageStorage)
    ae.add_requested_context(StorageCommitmentPushModel)
    assoc = ae.associate(
        *node.dicom,
        ae_title="PACS",
        evt_handlers=[(evt.EVT_CONN_OPEN, set_nodelay), (evt.EVT_N_EVENT_REPORT, on_report)],
    )
    assert assoc.is_established
    try:
        for ds in images:
            assert assoc.send_c_store(ds).Status == 0
        first = _commit_on(assoc, reports, _commit_request(tuid, images, never), within=10)
        success, failed = _lists(reports[0])
        assert success == sorted(ds.SOPInstanceUID for ds in images)
        assert failed == [(never, 0x0112)]
        # Asked again for what is now archived: answered from the archive at once.
        again = _commit_request(generate_uid(), images, never_sent="")
        second = _commit_on(assoc, reports, again, within=2)
        assert _lists(reports[1]) == (success, [])
    finally:
        assoc.release()
    log.info(
        "commitment reports after %.2f s (2 stored + 1 never sent), %.2f s (archived)",
        first,
        second,
    )
    client = await connect_temporal(node.settings.temporal)
    found = await eventually(lambda: _workflows(client, f'TransactionUID="{tuid}"'), timeout=30)
    assert found[0].workflow_type == "StorageCommitmentWorkflow"
    result = await client.get_workflow_handle_for(
        StorageCommitmentWorkflow.run, found[0].id
    ).result()
    assert result.delivered_via == "same-association"


async def _workflows(client: Any, query: str) -> list[Any]:
    return [w async for w in client.list_workflows(query)]


async def test_commitment_report_on_a_new_association_when_the_requester_left(
    node: Platform,
) -> None:
    images = list(ct_series(2, size=64))
    _store(node, images, REPORT_AE)
    reports: list[Dataset] = []
    arrived = threading.Event()

    def on_report(event: Any) -> tuple[int, None]:
        reports.append(event.event_information)
        arrived.set()
        return 0x0000, None

    listener = AE(ae_title=REPORT_AE)
    listener.add_supported_context(StorageCommitmentPushModel)
    server = listener.start_server(
        ("127.0.0.1", REPORT_PORT),
        block=False,
        evt_handlers=[(evt.EVT_CONN_OPEN, set_nodelay), (evt.EVT_N_EVENT_REPORT, on_report)],
    )
    try:
        tuid, never = generate_uid(), generate_uid()
        ae = AE(ae_title=REPORT_AE)
        ae.add_requested_context(StorageCommitmentPushModel)
        assoc = ae.associate(
            *node.dicom, ae_title="PACS", evt_handlers=[(evt.EVT_CONN_OPEN, set_nodelay)]
        )
        assert assoc.is_established
        status, _ = assoc.send_n_action(
            _commit_request(tuid, images, never),
            1,
            StorageCommitmentPushModel,
            StorageCommitmentPushModelInstance,
        )
        assoc.release()  # leave at once: the report must come on a new association
        assert status.Status == 0x0000
        await eventually(arrived.is_set, timeout=120)
    finally:
        server.shutdown()
    success, failed = _lists(reports[0])
    assert success == sorted(ds.SOPInstanceUID for ds in images)
    assert failed == [(never, 0x0112)]
    client = await connect_temporal(node.settings.temporal)
    found = await eventually(lambda: _workflows(client, f'TransactionUID="{tuid}"'), timeout=30)
    result = await client.get_workflow_handle_for(
        StorageCommitmentWorkflow.run, found[0].id
    ).result()
    assert result.delivered_via == "new-association"
    events = await eventually(
        lambda: [
            e
            for e in node.get(
                "/api/audit/events",
                params={"type": "pacs.commitment.reported"},
                timeout=30,
            ).json()
            if e["sop_instance_uid"] == tuid
        ],
        timeout=30,
    )
    assert len(events) == 1


def pacs(node: Platform, *args: str) -> Any:
    host, port = node.dicom
    target = ["--aet", "PACS", "--host", host, "--port", str(port), "--calling-aet", "CLI1"]
    argv = [sys.executable, "-m", "apps.cli", *args, *target]
    return run(argv, timeout=180)


async def test_pacs_cli_worklist_mpps_and_commit(node: Platform, tmp_path: Path) -> None:
    item = schedule(node, step_id="Q", station="CLI1", modality="US", date="2024-04-01")
    listed = pacs(node, "worklist", "--station", "CLI1", "--date", "20240401")
    assert listed.returncode == 0, listed.stderr
    assert item["accession_number"] in listed.stdout and "1 item(s)" in listed.stdout

    created = pacs(node, "mpps", "create", "--accession", item["accession_number"])
    assert created.returncode == 0, created.stderr
    uid = created.stdout.strip().splitlines()[-1]
    assert pacs(node, "mpps", "set", uid, "--status", "DISCONTINUED").returncode == 0
    refused = pacs(node, "mpps", "set", uid, "--status", "COMPLETED")
    assert refused.returncode == 1 and "0x0110" in refused.stderr

    images = list(ct_series(1, size=64))
    _store(node, images, "CLI1")
    path = tmp_path / "one.dcm"
    images[0].save_as(path, enforce_file_format=True)
    committed = pacs(node, "commit", str(path), "--wait", "90")
    assert committed.returncode == 0, committed.stdout + committed.stderr
    assert f"committed {images[0].SOPInstanceUID}" in committed.stdout

    unreachable = run([sys.executable, "-m", "apps.cli", "worklist", "--port", "1"], timeout=60)
    assert unreachable.returncode == 2 and "unreachable" in unreachable.stderr
