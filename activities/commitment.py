"""Storage Commitment side effects: check instances are archived intact, report to the peer."""

from __future__ import annotations

import asyncio
import logging
import ssl
from collections.abc import Iterable

from temporalio import activity
from temporalio.exceptions import ApplicationError

from infra.dimse.commitment_report import send_on_new_association
from infra.internal_api import ApiUnavailable, InternalApi
from infra.settings import DicomSettings
from infra.storage.archive import archive_key
from infra.storage.landing import Landing
from infra.storage.tiers import Tiers
from schemas.catalog import CatalogInstance, InstanceQuery
from schemas.commitment import (
    CommitmentCheck,
    CommitmentCheckResult,
    CommitmentRef,
    RefOutcome,
    ReportDelivery,
)

log = logging.getLogger(__name__)


class CommitmentActivities:
    """Built once per worker with the catalog, the landing areas, the archive and the
    remote-AE table."""

    def __init__(
        self,
        catalog: InternalApi,
        landings: Iterable[Landing],
        archive: Tiers,  # committed in whichever tier it is
        dicom: DicomSettings,
        tls: ssl.SSLContext | None = None,
    ) -> None:
        self.catalog = catalog
        self.landings = list(landings)
        self.archive = archive
        self.dicom = dicom
        # How we connect to a requester whose port speaks TLS (RemoteAE.tls).
        self.tls = tls

    def _lookup(
        self, refs: list[CommitmentRef], caught_up: bool, positions: dict[int, int] | None = None
    ) -> dict[str, CatalogInstance]:
        query = InstanceQuery(
            sop_instance_uids=[r.sop_instance_uid for r in refs],
            caught_up=caught_up,
            log_positions=positions or {},
        )
        return {i.sop_instance_uid: i for i in self.catalog.instances(query)}

    def _check(
        self, refs: list[CommitmentRef], positions: dict[int, int] | None = None
    ) -> list[RefOutcome]:
        known = self._lookup(refs, caught_up=False)
        waiting: dict[str, RefOutcome] = {}
        absent = []
        for ref in refs:
            uid = ref.sop_instance_uid
            if uid in known:
                continue
            if any(landing.holds_sop(uid) for landing in self.landings):
                detail = "received, not archived yet"
                waiting[uid] = RefOutcome(ref=ref, state="not-archived", detail=detail)
            else:
                absent.append(ref)
        # Landing is looked at before the caught-up listing: an instance archived (and so gone
        # from landing) in between is then in the catalog, as its announcement came first.
        if absent:
            try:
                known.update(self._lookup(absent, caught_up=True, positions=positions))
            except ApiUnavailable as exc:
                detail = f"not found, and the catalog could not confirm it yet ({exc})"
                for ref in absent:
                    waiting[ref.sop_instance_uid] = RefOutcome(
                        ref=ref, state="unconfirmed", detail=detail
                    )
        missing = "never received"
        return [
            self._archived(ref, known[ref.sop_instance_uid])
            if ref.sop_instance_uid in known
            else waiting.get(ref.sop_instance_uid)
            or RefOutcome(ref=ref, state="missing", detail=missing)
            for ref in refs
        ]

    def _archived(self, ref: CommitmentRef, entry: CatalogInstance) -> RefOutcome:
        """A received instance: committed only if archived with the checksum received."""
        if entry.sop_class_uid != ref.sop_class_uid:
            detail = f"stored as SOP class {entry.sop_class_uid}"
            return RefOutcome(ref=ref, state="class-conflict", detail=detail)
        key = archive_key(
            entry.study_instance_uid, entry.series_instance_uid, entry.sop_instance_uid
        )
        stored = self.archive.head(key)
        if stored is None:
            return RefOutcome(ref=ref, state="not-archived", detail="not archived yet")
        if not stored.sha256 or stored.sha256 != entry.sha256:
            detail = f"archive holds sha256 {stored.sha256 or '?'}, received {entry.sha256}"
            return RefOutcome(ref=ref, state="checksum-mismatch", detail=detail)
        return RefOutcome(ref=ref, state="committed")

    @activity.defn
    async def check_commitment(self, request: CommitmentCheck) -> CommitmentCheckResult:
        """Each referenced instance: committed only if archived with the received checksum."""
        return CommitmentCheckResult(
            outcomes=await asyncio.to_thread(self._check, request.references, request.log_positions)
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
        if peer.tls and self.tls is None:
            raise ApplicationError(
                f"AE {delivery.calling_ae!r} needs TLS and this node has no certificate "
                "(pacs certs init): the report is not sent in clear text",
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
            self.tls if peer.tls else None,
        )
        if not ok:
            raise ApplicationError(f"report to {delivery.calling_ae} failed: {detail}")
        log.info(
            "commitment %s reported to %s", delivery.report.transaction_uid, delivery.calling_ae
        )
