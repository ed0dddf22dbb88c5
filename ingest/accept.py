"""The one accept path for DIMSE and STOW-RS.

Order matters and is the product's promise: (1) the bytes are durable in the landing area,
(2) the `pacs.instance.received` event is acknowledged by the broker, (3) only then does the
sender hear success. Any failure or timeout in (1) or (2) becomes a failure status.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import threading
import time
import zlib
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass
from typing import Literal, Protocol

from infra.dicom.header import HeaderError, InstanceHeader, read_header
from infra.dicom.statuses import (
    DUPLICATE_SOP_INSTANCE,
    OUT_OF_RESOURCES,
    STUDY_UID_MISMATCH,
    SUCCESS,
)
from infra.eventlog import EventPublisher
from infra.metrics import ACCEPT_SECONDS, LANDING_SECONDS, PUBLISH_SECONDS, status_label
from infra.settings import DuplicatePolicy, IngestSettings
from infra.storage.archive import archive_key
from infra.storage.landing import Landing, landing_key, sha_of_key
from infra.storage.metadata import MetadataStore, encode_metadata, metadata_key
from infra.storage.tiers import StoredCopies
from ingest.known_instances import KnownInstances
from schemas.events import (
    Event,
    InstanceReceived,
    InstanceRef,
    InstanceRejected,
    MetadataRef,
    fact_event_id,
)

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Origin:
    """Who sent the object, for the audit trail."""

    via: Literal["dimse", "stow"]
    calling_ae: str = ""
    client: str = ""


@dataclass(frozen=True)
class Outcome:
    """What the sender is told. `status` is a DICOM status (0 = success)."""

    status: int
    reason: str = ""
    header: InstanceHeader | None = None

    @property
    def ok(self) -> bool:
        return self.status == SUCCESS


@dataclass(frozen=True)
class _Landed:
    """Bytes are durable; `event` must be acknowledged before success is answered."""

    header: InstanceHeader
    event: Event
    answer: Outcome


def instance_ref(header: InstanceHeader, sha256: str, size: int) -> InstanceRef:
    return InstanceRef(
        study_instance_uid=header.study_instance_uid,
        series_instance_uid=header.series_instance_uid,
        sop_instance_uid=header.sop_instance_uid,
        sop_class_uid=header.sop_class_uid,
        sha256=sha256,
        size=size,
    )


def received_event(
    ref: InstanceRef,
    header: InstanceHeader,
    key: str,
    landing_mode: str,
    origin: Origin,
    replaces: str | None,
    metadata_ref: MetadataRef | None = None,
    after_deletion: str = "",
) -> InstanceReceived:
    """The announcement of landed bytes; the same fact always gets the same event id (an
    arrival after a deletion is another fact). The header travels inside it, or, stored
    beforehand, as `metadata_ref`."""
    parts = ("received", ref.sop_instance_uid, ref.sha256, replaces or "")
    return InstanceReceived(
        event_id=fact_event_id(*parts, *([after_deletion] if after_deletion else [])),
        instance=ref,
        transfer_syntax_uid=header.transfer_syntax_uid,
        patient_id=header.patient_id,
        modality=header.modality,
        landing_mode="s3" if landing_mode == "s3" else "spool",
        landing_key=key,
        via=origin.via,
        calling_ae=origin.calling_ae,
        client=origin.client,
        replaces_sha256=replaces,
        metadata=None if metadata_ref else header.metadata,
        metadata_ref=metadata_ref,
    )


class PendingDeletions(Protocol):
    def covering(self, study: str, series: str, sop: str) -> str:
        """The id of a deletion not yet purged that covers this instance, or ""."""
        ...


class _StripedLocks:
    """Serialises work on the same SOP Instance UID across associations, in bounded memory."""

    def __init__(self, stripes: int = 256) -> None:
        self._locks = [threading.Lock() for _ in range(stripes)]

    def for_key(self, key: str) -> threading.Lock:
        return self._locks[zlib.crc32(key.encode()) % len(self._locks)]


class Acceptor:
    """Lands bytes durably, announces them, and decides the answer to the sender."""

    def __init__(
        self,
        landing: Landing,
        archive: StoredCopies,
        publisher: EventPublisher,
        settings: IngestSettings,
        loop: asyncio.AbstractEventLoop,
        metadata: MetadataStore | None = None,
        deletions: PendingDeletions | None = None,
    ) -> None:
        self.landing = landing
        # Without it, every header travels inside its event, whatever its size.
        self.metadata = metadata
        self.archive = archive
        self.publisher = publisher
        self.settings = settings
        self.loop = loop
        self._locks = _StripedLocks()
        self.known = KnownInstances(archive, landing)
        # Pending deletions (infra/storage/deletions.py); none: nothing is ever deleted.
        self.deletions = deletions

    # -- blocking part: runs on a DIMSE association thread or a worker thread ------------

    def _land(self, part10: bytes, origin: Origin, expect_study: str | None) -> _Landed | Outcome:
        try:
            header = read_header(part10, metadata=True)
        except HeaderError as exc:
            return Outcome(exc.code, exc.reason)
        if expect_study and header.study_instance_uid != expect_study:
            return Outcome(
                STUDY_UID_MISMATCH,
                f"StudyInstanceUID {header.study_instance_uid} does not match the target study "
                f"{expect_study}",
                header,
            )
        sha256 = hashlib.sha256(part10).hexdigest()
        ref = instance_ref(header, sha256, len(part10))
        uids = (header.study_instance_uid, header.series_instance_uid, header.sop_instance_uid)
        key = landing_key(*uids, sha256)
        with self._locks.for_key(header.sop_instance_uid):
            current, in_landing, deletion = None, False, ""
            if self.known.may_exist(header.study_instance_uid, header.sop_instance_uid):
                current, in_landing = self._current_version(uids)
            if (
                current is not None
                and self.deletions
                and (deletion := self.deletions.covering(*uids))
            ):
                # The version held was deleted (its purge is pending): this is a new arrival.
                current, in_landing = None, False
            if current == sha256:
                if not in_landing:
                    return Outcome(SUCCESS, "identical instance already archived", header)
                # Landed before, but the sender may never have heard success (a crash or a
                # failed announce): announce again under the same event id; consumers dedupe.
                stored = self._store_large_metadata(header, sha256)
                event = received_event(ref, header, key, self.landing.mode, origin, None, stored)
                return _Landed(header, event, Outcome(SUCCESS, "", header))
            if current is not None and self.settings.duplicate_policy is DuplicatePolicy.REJECT:
                return self._rejected(ref, header, current, origin)
            landing_started = time.perf_counter()
            self.landing.put(key, part10)
            LANDING_SECONDS.labels(origin.via, self.landing.mode).observe(
                time.perf_counter() - landing_started
            )
            self.known.add(header.study_instance_uid, header.sop_instance_uid)
        stored = self._store_large_metadata(header, sha256)
        event = received_event(
            ref, header, key, self.landing.mode, origin, current, stored, after_deletion=deletion
        )
        return _Landed(header, event, Outcome(SUCCESS, "", header))

    def _store_large_metadata(self, header: InstanceHeader, sha256: str) -> MetadataRef | None:
        """Store a header too large for its event (durable before the event is sent)."""
        if self.metadata is None or header.metadata is None:
            return None
        # Measured by encoding it: tens of microseconds for a CT slice's few KB.
        blob = encode_metadata(header.metadata)
        if len(blob) <= self.settings.inline_metadata_max_bytes:
            return None
        uids = (header.study_instance_uid, header.series_instance_uid, header.sop_instance_uid)
        return self.metadata.put(metadata_key(*uids, sha256), blob)

    def _current_version(self, uids: tuple[str, str, str]) -> tuple[str | None, bool]:
        """SHA-256 of the newest version we hold (landing first, then archive), and whether
        it is still in landing."""
        landed = self.landing.versions(*uids)
        if landed:
            return sha_of_key(landed[-1]), True
        stored = self.archive.head(archive_key(*uids))
        return (stored.sha256 if stored else None), False

    def _rejected(
        self, ref: InstanceRef, header: InstanceHeader, current: str, origin: Origin
    ) -> _Landed:
        event = InstanceRejected(
            event_id=fact_event_id("rejected", ref.sop_instance_uid, ref.sha256, current),
            instance=ref,
            reason="duplicate SOP Instance UID with different content",
            existing_sha256=current,
            via=origin.via,
            calling_ae=origin.calling_ae,
            client=origin.client,
        )
        reason = (
            f"SOP Instance {header.sop_instance_uid} is already stored with different "
            "content (duplicate policy: reject)"
        )
        return _Landed(header, event, Outcome(DUPLICATE_SOP_INSTANCE, reason, header))

    def _failure(self, header: InstanceHeader | None, exc: BaseException) -> Outcome:
        what = header.sop_instance_uid if header else "instance"
        log.warning("could not accept %s: %r", what, exc)
        return Outcome(OUT_OF_RESOURCES, f"could not store durably: {exc!r}", header)

    # -- entry points --------------------------------------------------------------------

    def accept_blocking(
        self, part10: bytes, origin: Origin, expect_study: str | None = None
    ) -> Outcome:
        """For threads outside the event loop (pynetdicom handlers)."""
        started = time.perf_counter()
        outcome = self._accept_blocking(part10, origin, expect_study)
        _observe(origin, outcome, started)
        return outcome

    def _accept_blocking(self, part10: bytes, origin: Origin, expect_study: str | None) -> Outcome:
        try:
            landed = self._land(part10, origin, expect_study)
        except Exception as exc:  # noqa: BLE001 - any landing failure is "out of resources"
            return self._failure(None, exc)
        if isinstance(landed, Outcome):
            return landed
        published = time.perf_counter()
        future = asyncio.run_coroutine_threadsafe(self.publisher.publish(landed.event), self.loop)
        try:
            future.result(self.settings.accept_timeout_seconds)
        except (FutureTimeout, Exception) as exc:  # noqa: BLE001
            future.cancel()
            return self._failure(landed.header, exc)
        PUBLISH_SECONDS.labels(origin.via).observe(time.perf_counter() - published)
        return landed.answer

    async def accept(
        self, part10: bytes, origin: Origin, expect_study: str | None = None
    ) -> Outcome:
        """For async callers (STOW-RS)."""
        started = time.perf_counter()
        outcome = await self._accept(part10, origin, expect_study)
        _observe(origin, outcome, started)
        return outcome

    async def _accept(self, part10: bytes, origin: Origin, expect_study: str | None) -> Outcome:
        try:
            landed = await asyncio.to_thread(self._land, part10, origin, expect_study)
        except Exception as exc:  # noqa: BLE001
            return self._failure(None, exc)
        if isinstance(landed, Outcome):
            return landed
        published = time.perf_counter()
        try:
            await asyncio.wait_for(
                self.publisher.publish(landed.event), self.settings.accept_timeout_seconds
            )
        except Exception as exc:  # noqa: BLE001 - includes TimeoutError
            return self._failure(landed.header, exc)
        PUBLISH_SECONDS.labels(origin.via).observe(time.perf_counter() - published)
        return landed.answer


def _observe(origin: Origin, outcome: Outcome, started: float) -> None:
    ACCEPT_SECONDS.labels(origin.via, status_label(outcome.status)).observe(
        time.perf_counter() - started
    )
