"""`pacs worklist`, `pacs mpps create|set`, `pacs commit`: modality-side SCUs for any peer."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import typer
from pydicom import dcmread
from pydicom.dataset import Dataset
from pydicom.uid import generate_uid
from pynetdicom import AE, build_context, evt
from pynetdicom.sop_class import (  # type: ignore[attr-defined]
    ModalityPerformedProcedureStep,
    ModalityWorklistInformationFind,
    StorageCommitmentPushModel,
    StorageCommitmentPushModelInstance,
)

from infra.dimse.nodelay import set_nodelay
from infra.scu.peer import Peer, ScuError
from infra.scu.peer import associate as open_association

mpps_app = typer.Typer(help="Modality Performed Procedure Step SCU (N-CREATE / N-SET).")

AET = typer.Option("PACS", "--aet", help="Called AE title of the peer.")
HOST = typer.Option("127.0.0.1", "--host")
PORT = typer.Option(11112, "--port")
CALLING = typer.Option("PACSSCU", "--calling-aet", help="Our AE title.")
TIMEOUT = typer.Option(30.0, "--timeout", help="Seconds to wait for the peer.")
INSTANCE_FILES = typer.Option([], "--instances", help="DICOM files performed (listed)")
COMMIT_FILES = typer.Argument(..., help="DICOM files (or folders) to ask commitment for")


def _fail(message: str, code: int = 1) -> typer.Exit:
    typer.echo(message, err=True)
    return typer.Exit(code)


@contextmanager
def associate(
    sop_class: str, aet: str, host: str, port: int, calling: str, timeout: float,
    handlers: list[Any] | None = None,
) -> Iterator[Any]:  # fmt: skip
    """An association proposing one SOP class; a clear error and exit code 2 if refused."""
    peer = Peer(host, port, aet, calling, timeout)
    try:
        assoc = open_association(peer, [build_context(sop_class)], handlers=handlers)
    except ScuError as exc:
        raise _fail(exc.reason, 2) from exc
    if not any(cx.abstract_syntax == sop_class for cx in assoc.accepted_contexts):
        assoc.release()
        raise _fail(f"{aet} does not support SOP class {sop_class}", 2)
    try:
        yield assoc
    finally:
        if assoc.is_established:
            assoc.release()


def _check(status: Dataset | None, what: str) -> int:
    if not status or "Status" not in status:
        raise _fail(f"{what}: no response from the peer (timeout or association aborted)", 2)
    code = int(status.Status)
    if code not in (0x0000, 0xFF00, 0xFF01):
        comment = status.get("ErrorComment", "")
        raise _fail(f"{what} failed with status 0x{code:04X} {comment}".rstrip())
    return code


def worklist(
    station: str = typer.Option("", "--station", help="ScheduledStationAETitle"),
    modality: str = typer.Option("", "--modality"),
    date: str = typer.Option("", "--date", help="YYYYMMDD or a range YYYYMMDD-YYYYMMDD"),
    patient_name: str = typer.Option("", "--patient-name", help="Wildcards * and ? allowed"),
    patient_id: str = typer.Option("", "--patient-id"),
    accession: str = typer.Option("", "--accession"),
    aet: str = AET, host: str = HOST, port: int = PORT, calling_aet: str = CALLING,
    timeout: float = TIMEOUT,
) -> None:  # fmt: skip
    """Query a Modality Worklist (C-FIND, 1.2.840.10008.5.1.4.31) and list the items."""
    query = Dataset()
    query.PatientName = patient_name
    query.PatientID = patient_id
    query.AccessionNumber = accession
    query.StudyInstanceUID = ""
    query.RequestedProcedureDescription = ""
    step = Dataset()
    step.ScheduledStationAETitle = station
    step.Modality = modality
    step.ScheduledProcedureStepStartDate = date
    step.ScheduledProcedureStepStartTime = ""
    step.ScheduledProcedureStepID = ""
    step.ScheduledProcedureStepDescription = ""
    query.ScheduledProcedureStepSequence = [step]
    count = 0
    with associate(ModalityWorklistInformationFind, aet, host, port, calling_aet, timeout) as a:
        for status, found in a.send_c_find(query, ModalityWorklistInformationFind):
            if _check(status, "C-FIND") == 0x0000:
                break
            if found is None:
                continue
            count += 1
            sps = (
                found.ScheduledProcedureStepSequence[0]
                if found.get("ScheduledProcedureStepSequence")
                else Dataset()
            )
            typer.echo(
                f"{sps.get('ScheduledProcedureStepStartDate', '')} "
                f"{sps.get('ScheduledProcedureStepStartTime', '')}  "
                f"{sps.get('ScheduledStationAETitle', '')}  {sps.get('Modality', '')}  "
                f"{found.get('AccessionNumber', '')}  {found.get('PatientID', '')}  "
                f"{found.get('PatientName', '')}  {found.get('StudyInstanceUID', '')}"
            )
    typer.echo(f"{count} item(s)")


@mpps_app.command("create")
def mpps_create(
    study_uid: str = typer.Option("", "--study-uid", help="StudyInstanceUID from the worklist"),
    accession: str = typer.Option("", "--accession"),
    step_id: str = typer.Option("", "--step-id", help="ScheduledProcedureStepID"),
    patient_id: str = typer.Option("", "--patient-id"),
    patient_name: str = typer.Option("", "--patient-name"),
    modality: str = typer.Option("CT", "--modality"),
    uid: str = typer.Option("", "--uid", help="MPPS SOP Instance UID (generated if empty)"),
    aet: str = AET, host: str = HOST, port: int = PORT, calling_aet: str = CALLING,
    timeout: float = TIMEOUT,
) -> None:  # fmt: skip
    """N-CREATE an MPPS IN PROGRESS; prints its SOP Instance UID."""
    instance_uid = uid or str(generate_uid())
    ds = Dataset()
    scheduled = Dataset()
    scheduled.StudyInstanceUID = study_uid
    scheduled.AccessionNumber = accession
    scheduled.ScheduledProcedureStepID = step_id
    ds.ScheduledStepAttributesSequence = [scheduled]
    ds.PatientID = patient_id
    ds.PatientName = patient_name
    ds.Modality = modality
    ds.PerformedStationAETitle = calling_aet
    ds.PerformedProcedureStepID = instance_uid[-16:]
    ds.PerformedProcedureStepStatus = "IN PROGRESS"
    ds.PerformedSeriesSequence = []
    with associate(ModalityPerformedProcedureStep, aet, host, port, calling_aet, timeout) as a:
        status, _ = a.send_n_create(ds, ModalityPerformedProcedureStep, instance_uid)
        _check(status, "N-CREATE")
    typer.echo(instance_uid)


@mpps_app.command("set")
def mpps_set(
    uid: str = typer.Argument(..., help="MPPS SOP Instance UID"),
    status_value: str = typer.Option(
        "COMPLETED", "--status", help="IN PROGRESS, COMPLETED or DISCONTINUED"
    ),
    files: list[Path] = INSTANCE_FILES,
    aet: str = AET, host: str = HOST, port: int = PORT, calling_aet: str = CALLING,
    timeout: float = TIMEOUT,
) -> None:  # fmt: skip
    """N-SET an MPPS (e.g. COMPLETED with the instances made, read from DICOM files)."""
    ds = Dataset()
    ds.PerformedProcedureStepStatus = status_value
    by_series: dict[str, list[Dataset]] = {}
    for path in files:
        header = dcmread(path, stop_before_pixels=True)
        ref = Dataset()
        ref.ReferencedSOPClassUID = header.SOPClassUID
        ref.ReferencedSOPInstanceUID = header.SOPInstanceUID
        by_series.setdefault(str(header.SeriesInstanceUID), []).append(ref)
    series_items = []
    for series_uid, refs in by_series.items():
        item = Dataset()
        item.SeriesInstanceUID = series_uid
        item.ReferencedImageSequence = refs
        series_items.append(item)
    ds.PerformedSeriesSequence = series_items
    with associate(ModalityPerformedProcedureStep, aet, host, port, calling_aet, timeout) as a:
        status, _ = a.send_n_set(ds, ModalityPerformedProcedureStep, uid)
        _check(status, "N-SET")
    typer.echo(f"{uid} {status_value}")


def commit(
    files: list[Path] = COMMIT_FILES,
    listen_port: int = typer.Option(
        0, "--listen-port", help="Also accept the report on a new association on this port"
    ),
    wait: float = typer.Option(120.0, "--wait", help="Seconds to wait for the N-EVENT-REPORT"),
    aet: str = AET, host: str = HOST, port: int = PORT, calling_aet: str = CALLING,
    timeout: float = TIMEOUT,
) -> None:  # fmt: skip
    """Storage Commitment (N-ACTION), then wait for the N-EVENT-REPORT on the same association
    or, with --listen-port, on a new one; exit 1 if any instance failed."""
    paths = [p for f in files for p in (sorted(f.rglob("*")) if f.is_dir() else [f]) if p.is_file()]
    info = Dataset()
    info.TransactionUID = generate_uid()
    refs = []
    for path in paths:
        header = dcmread(path, stop_before_pixels=True)
        ref = Dataset()
        ref.ReferencedSOPClassUID = header.SOPClassUID
        ref.ReferencedSOPInstanceUID = header.SOPInstanceUID
        refs.append(ref)
    if not refs:
        raise _fail("no DICOM files given", 2)
    info.ReferencedSOPSequence = refs
    reports: list[Dataset] = []
    arrived = threading.Event()

    def on_report(event: Any) -> tuple[int, None]:
        if event.event_information.get("TransactionUID") == info.TransactionUID:
            reports.append(event.event_information)
            arrived.set()
        return 0x0000, None

    handlers = [(evt.EVT_N_EVENT_REPORT, on_report)]
    server = None
    if listen_port:
        listener = AE(ae_title=calling_aet)
        listener.add_supported_context(StorageCommitmentPushModel)
        server = listener.start_server(
            ("0.0.0.0", listen_port),
            block=False,
            evt_handlers=[(evt.EVT_CONN_OPEN, set_nodelay), *handlers],
        )
    try:
        with associate(
            StorageCommitmentPushModel, aet, host, port, calling_aet, timeout, handlers
        ) as a:
            status, _ = a.send_n_action(
                info, 1, StorageCommitmentPushModel, StorageCommitmentPushModelInstance
            )
            _check(status, "N-ACTION")
            typer.echo(f"commitment {info.TransactionUID} requested for {len(refs)} instance(s)")
            if not listen_port:
                arrived.wait(wait)
        if listen_port:
            arrived.wait(wait)
    finally:
        if server is not None:
            server.shutdown()
    if not reports:
        raise _fail(f"no N-EVENT-REPORT within {wait:.0f}s", 3)
    report = reports[0]
    for item in report.get("ReferencedSOPSequence", []):
        typer.echo(f"committed {item.ReferencedSOPInstanceUID}")
    failed = report.get("FailedSOPSequence", [])
    for item in failed:
        typer.echo(
            f"FAILED    {item.ReferencedSOPInstanceUID} reason 0x{int(item.FailureReason):04X}"
        )
    raise typer.Exit(1 if failed else 0)


def register(app: typer.Typer) -> None:
    """Hang these commands on the `pacs` CLI."""
    app.command("worklist")(worklist)
    app.command("commit")(commit)
    app.add_typer(mpps_app, name="mpps")
