"""Storage Commitment side effects: check instances are archived intact, report to the peer."""

from __future__ import annotations

import asyncio
import logging

from temporalio import activity
from temporalio.exceptions import ApplicationError

from infra.objectstore import ArchiveStore, archive_key
from infra.settings import DicomSettings
from ingest.catalog_client import CatalogClient
from ingest.commitment_report import send_on_new_association
from schemas.catalog import InstanceQuery
from schemas.commitment import (
    CommitmentCheck,
    CommitmentCheckResult,
    CommitmentRef,
    RefOutcome,
    ReportDelivery,
)

log = logging.getLogger(__name__)


class CommitmentActivities:
    """Built once per worker with the catalog, the archive and the remote-AE table."""

    def __init__(self, catalog: CatalogClient, archive: ArchiveStore, dicom: DicomSettings) -> None:
        self.catalog = catalog
        self.archive = archive
        self.dicom = dicom

    def _check(self, refs: list[CommitmentRef]) -> list[RefOutcome]:
        known = {
            i.sop_instance_uid: i
            for i in self.catalog.instances(
                InstanceQuery(sop_instance_uids=[r.sop_instance_uid for r in refs])
            )
        }
        outcomes = []
        for ref in refs:
            entry = known.get(ref.sop_instance_uid)
            if entry is None:
                outcomes.append(RefOutcome(ref=ref, state="missing", detail="never received"))
                continue
            if entry.sop_class_uid != ref.sop_class_uid:
                detail = f"stored as SOP class {entry.sop_class_uid}"
                outcomes.append(RefOutcome(ref=ref, state="class-conflict", detail=detail))
                continue
            key = archive_key(
                entry.study_instance_uid, entry.series_instance_uid, entry.sop_instance_uid
            )
            stored = self.archive.head(key)
            if stored is None:
                outcomes.append(
                    RefOutcome(ref=ref, state="not-archived", detail="not archived yet")
                )
            elif not stored.sha256 or stored.sha256 != entry.sha256:
                detail = f"archive holds sha256 {stored.sha256 or '?'}, received {entry.sha256}"
                outcomes.append(RefOutcome(ref=ref, state="checksum-mismatch", detail=detail))
            else:
                outcomes.append(RefOutcome(ref=ref, state="committed"))
        return outcomes

    @activity.defn
    async def check_commitment(self, request: CommitmentCheck) -> CommitmentCheckResult:
        """Each referenced instance: committed only if archived with the received checksum."""
        return CommitmentCheckResult(
            outcomes=await asyncio.to_thread(self._check, request.references)
        )

    @activity.defn
    async def send_event_report(self, delivery: ReportDelivery) -> None:
        """N-EVENT-REPORT on a new association to the requester's AE from the remote-AE table."""
        peer = self.dicom.remote_ae(delivery.calling_ae)
        if peer is None:
            raise ApplicationError(
                f"AE {delivery.calling_ae!r} is not in the remote-AE table "
                "(PACS_DICOM__REMOTE_AES): cannot open an association to report",
                non_retryable=True,
            )
        ok, detail = await asyncio.to_thread(
            send_on_new_association,
            delivery.report,
            self.dicom.ae_title,
            delivery.calling_ae,
            peer.host,
            peer.port,
            30.0,
        )
        if not ok:
            raise ApplicationError(f"report to {delivery.calling_ae} failed: {detail}")
        log.info(
            "commitment %s reported to %s", delivery.report.transaction_uid, delivery.calling_ae
        )
