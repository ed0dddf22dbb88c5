"""The storage commitment report on a new association to a requester whose port speaks TLS
(`tls: true` in the remote-AE table): sent over TLS with our certificate, never in clear."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from pynetdicom import AE, evt
from pynetdicom.sop_class import StorageCommitmentPushModel  # type: ignore[attr-defined]
from temporalio.exceptions import ApplicationError

from activities.commitment import CommitmentActivities
from infra.settings import ClientCertificates, DicomSettings, RemoteAE
from infra.tls.authority import CertsLayout, init_authority
from infra.tls.contexts import ServerCredentials, client_context, server_context
from schemas.commitment import CommitmentRef, CommitmentReport, ReportDelivery


@pytest.fixture
def certs(tmp_path: Path) -> CertsLayout:
    layout = CertsLayout(tmp_path)
    init_authority(layout, "PACS", [])
    return layout


@pytest.fixture
def modality(certs: CertsLayout) -> Iterator[tuple[int, list[tuple[str, str]]]]:
    """A requester's TLS port that wants our certificate; (its port, reports received as
    (Transaction UID, the sender certificate's CN))."""
    reports: list[tuple[str, str]] = []

    def on_report(event: Any) -> tuple[int, None]:
        subject = event.assoc.dul.socket.socket.getpeercert()["subject"]
        reports.append(
            (str(event.event_information.TransactionUID), dict(r[0] for r in subject)["commonName"])
        )
        return 0x0000, None

    ae = AE(ae_title="CT1")
    ae.add_supported_context(StorageCommitmentPushModel)
    credentials = ServerCredentials(certs.server_cert, certs.server_key, certs.ca_cert)
    server = ae.start_server(
        ("127.0.0.1", 0),
        block=False,
        ssl_context=server_context(credentials, ClientCertificates.REQUIRED),
        evt_handlers=[(evt.EVT_N_EVENT_REPORT, on_report)],
    )
    try:
        yield server.server_address[1], reports
    finally:
        server.shutdown()


def _activities(port: int, tls: Any) -> CommitmentActivities:
    dicom = DicomSettings(remote_aes={"CT1": RemoteAE(host="127.0.0.1", port=port, tls=True)})
    return CommitmentActivities(None, [], None, dicom, tls)  # type: ignore[arg-type]


DELIVERY = ReportDelivery(
    report=CommitmentReport(
        transaction_uid="1.2.826.0.1.3680043.10.1",
        success=[
            CommitmentRef(sop_class_uid="1.2.840.10008.5.1.4.1.1.2", sop_instance_uid="1.2.3")
        ],
    ),
    calling_ae="CT1",
)


async def test_the_report_goes_over_tls_with_our_certificate(
    certs: CertsLayout, modality: tuple[int, list[tuple[str, str]]]
) -> None:
    port, reports = modality
    tls = client_context(certs.ca_cert, certs.server_cert, certs.server_key)
    await _activities(port, tls).send_event_report(DELIVERY)
    assert reports == [("1.2.826.0.1.3680043.10.1", "PACS")]


async def test_without_a_certificate_nothing_is_sent_in_clear(
    modality: tuple[int, list[tuple[str, str]]],
) -> None:
    port, reports = modality
    with pytest.raises(ApplicationError, match="needs TLS") as raised:
        await _activities(port, None).send_event_report(DELIVERY)
    assert raised.value.non_retryable
    assert reports == []
