"""What C-MOVE and C-GET share: the identifier → stored instances → C-STORE sub-operations.

The identifier is matched against the read model (PS3.4 C.4.2.2.1: unique keys at and above
the retrieve level, UID lists at that level); each match's bytes come from landing or the
archive and go out exactly as stored when the peer accepts the stored transfer syntax, else
re-encoded (`infra.dimse.sending`). An instance that cannot be sent becomes a failed
sub-operation with the reason logged.
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from typing import Any, Protocol

from pydicom.dataset import Dataset
from pynetdicom.sop_class import (  # type: ignore[attr-defined]
    PatientRootQueryRetrieveInformationModelGet,
    PatientRootQueryRetrieveInformationModelMove,
    StudyRootQueryRetrieveInformationModelGet,
    StudyRootQueryRetrieveInformationModelMove,
)

from infra.audit_recorder import AuditRecorder, dimse_entry
from infra.dicom.header import validate_uid
from infra.dicom.statuses import (
    CANCELLED,
    IDENTIFIER_MISMATCH,
    PENDING,
    UNABLE_TO_CALCULATE_MATCHES,
)
from infra.dicom.transcode import TranscodeError
from infra.dimse.sending import prepare
from ingest.dimse.access import scope_of, user_name
from schemas.catalog import CatalogInstance, InstanceQuery

log = logging.getLogger(__name__)

PATIENT_ROOT = frozenset(
    {
        str(PatientRootQueryRetrieveInformationModelMove),
        str(PatientRootQueryRetrieveInformationModelGet),
    }
)
STUDY_ROOT = frozenset(
    {
        str(StudyRootQueryRetrieveInformationModelMove),
        str(StudyRootQueryRetrieveInformationModelGet),
    }
)
MOVE_MODELS = (
    PatientRootQueryRetrieveInformationModelMove,
    StudyRootQueryRetrieveInformationModelMove,
)
GET_MODELS = (
    PatientRootQueryRetrieveInformationModelGet,
    StudyRootQueryRetrieveInformationModelGet,
)

# Instances read from storage ahead of the one being sent, so S3 latency overlaps the network.
READ_AHEAD = 4
# ...unless they are big (multi-frame objects run to gigabytes): bytes held ahead at most.
READ_AHEAD_BYTES = 128 * 1024 * 1024
_LEVELS = ("PATIENT", "STUDY", "SERIES", "IMAGE")


class Catalog(Protocol):
    def instances(self, query: InstanceQuery) -> list[CatalogInstance]: ...


@dataclass(frozen=True)
class RetrieveSource:
    """Where retrieves look things up (the read model) and read bytes from (storage)."""

    catalog: Catalog
    load: Callable[[CatalogInstance], bytes | None]
    # Shared leases on the studies sent, held while sending (apps/retrieve_leases.py).
    lease: Callable[[Iterable[str], str], AbstractContextManager[None]] | None = None

    def leased(
        self, instances: Sequence[CatalogInstance], owner: str
    ) -> AbstractContextManager[None]:
        if self.lease is None:
            return nullcontext()
        return self.lease({i.study_instance_uid for i in instances}, owner)


class RetrieveError(Exception):
    """The request cannot be served; `status` goes to the peer with `reason` as ErrorComment."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


def _values(identifier: Dataset, keyword: str) -> list[str]:
    if keyword not in identifier or identifier[keyword].VM == 0:
        return []
    value = identifier[keyword].value
    items = value if isinstance(value, Sequence) and not isinstance(value, str) else [value]
    return [str(item).strip() for item in items if str(item).strip()]


def _uids(identifier: Dataset, keyword: str, *, required: bool, single: bool) -> list[str]:
    uids = _values(identifier, keyword)
    if required and not uids:
        raise RetrieveError(IDENTIFIER_MISMATCH, f"{keyword} is required at this level")
    if single and len(uids) > 1:
        raise RetrieveError(IDENTIFIER_MISMATCH, f"{keyword} must be a single UID above the level")
    for uid in uids:
        if problem := validate_uid(keyword, uid):
            raise RetrieveError(IDENTIFIER_MISMATCH, problem)
    return uids


def instance_query(identifier: Dataset, information_model: str) -> InstanceQuery:
    """The read-model query for a C-MOVE/C-GET identifier, or RetrieveError saying what's wrong.

    Hierarchical retrieve (PS3.4 C.4.2.2.1): unique keys above the level are single values,
    the key at the level may be a list of UIDs.
    """
    level = str(identifier.get("QueryRetrieveLevel", "") or "").strip().upper()
    if level not in _LEVELS:
        raise RetrieveError(
            IDENTIFIER_MISMATCH,
            f"QueryRetrieveLevel {level!r} is not PATIENT, STUDY, SERIES or IMAGE",
        )
    patient_root = information_model in PATIENT_ROOT
    if level == "PATIENT" and not patient_root:
        raise RetrieveError(IDENTIFIER_MISMATCH, "Study Root has no PATIENT level")
    depth = _LEVELS.index(level)
    patient_ids = _values(identifier, "PatientID")
    if patient_root and not patient_ids:
        raise RetrieveError(IDENTIFIER_MISMATCH, "PatientID is required in Patient Root")
    if len(patient_ids) > 1:
        raise RetrieveError(IDENTIFIER_MISMATCH, "PatientID must be one value")
    studies = _uids(identifier, "StudyInstanceUID", required=depth >= 1, single=depth > 1)
    series = _uids(identifier, "SeriesInstanceUID", required=depth >= 2, single=depth > 2)
    sops = _uids(identifier, "SOPInstanceUID", required=depth >= 3, single=False)
    return InstanceQuery(
        study_instance_uids=studies if depth >= 1 else [],
        series_instance_uids=series if depth >= 2 else [],
        sop_instance_uids=sops if depth >= 3 else [],
        patient_id=patient_ids[0] if patient_ids else None,
    )


def request_identifier(event: Any) -> Dataset | None:
    """The decoded C-MOVE/C-GET identifier, or None when the peer sent undecodable bytes."""
    try:
        identifier: Dataset = event.identifier
    except Exception:  # noqa: BLE001 - pydicom raises many types for malformed input
        return None
    return identifier


def find_instances(
    source: RetrieveSource, identifier: Dataset | None, model: str, assoc: Any = None
) -> list[CatalogInstance]:
    """The stored instances an identifier asks for (of the studies the association's user
    may read); RetrieveError when it cannot be answered."""
    if identifier is None:
        raise RetrieveError(IDENTIFIER_MISMATCH, "the identifier cannot be decoded")
    query = instance_query(identifier, model)
    query.scope = scope_of(assoc)
    try:
        return source.catalog.instances(query)
    except Exception as exc:
        log.exception("read model query %s failed", query)
        raise RetrieveError(
            UNABLE_TO_CALCULATE_MATCHES, f"read model unavailable: {type(exc).__name__}"
        ) from exc


def _unsendable(instance: CatalogInstance) -> Dataset:
    """A stand-in that pynetdicom cannot send (no File Meta): it counts it as a failed
    sub-operation and lists its SOP Instance UID in FailedSOPInstanceUIDList."""
    stand_in = Dataset()
    stand_in.SOPClassUID = instance.sop_class_uid
    stand_in.SOPInstanceUID = instance.sop_instance_uid
    return stand_in


def _read_ahead(
    items: Sequence[CatalogInstance], load: Callable[[CatalogInstance], bytes | None]
) -> Iterator[tuple[CatalogInstance, Future[bytes | None]]]:
    """Each item with its bytes being read, up to READ_AHEAD (and READ_AHEAD_BYTES) ahead."""
    with ThreadPoolExecutor(READ_AHEAD, thread_name_prefix="retrieve-read") as pool:
        window: deque[tuple[CatalogInstance, Future[bytes | None]]] = deque()
        held = 0
        try:
            for item in items:
                # The catalog's size is what the read will bring into memory.
                while window and (len(window) >= READ_AHEAD or held + item.size > READ_AHEAD_BYTES):
                    done = window.popleft()
                    held -= done[0].size
                    yield done
                window.append((item, pool.submit(load, item)))
                held += item.size
            while window:
                yield window.popleft()
        finally:
            for _, future in window:
                future.cancel()


def sub_operations(
    instances: Sequence[CatalogInstance],
    load: Callable[[CatalogInstance], bytes | None],
    accepted_syntaxes: Callable[[str], list[str]],
    is_cancelled: Callable[[], bool],
) -> Iterator[tuple[int | Dataset, Dataset | None]]:
    """The (status, dataset) pairs pynetdicom's C-MOVE/C-GET service turns into C-STOREs.

    `accepted_syntaxes(sop_class)` lists what the receiving side accepted for that class.
    """
    for instance, future in _read_ahead(instances, load):
        if is_cancelled():
            log.info("retrieve cancelled by the peer")
            # pynetdicom lists the failed sub-operations so far in the final response.
            yield CANCELLED, None
            return
        sop = instance.sop_instance_uid
        try:
            data = future.result()
        except Exception as exc:  # noqa: BLE001 - any storage error fails this one only
            log.warning("sub-operation %s failed: cannot read stored bytes: %r", sop, exc)
            data = None
        if data is None:
            log.warning("sub-operation %s failed: bytes not found in landing or archive", sop)
            yield PENDING, _unsendable(instance)
            continue
        accepted = accepted_syntaxes(instance.sop_class_uid)
        try:
            if not accepted:
                raise TranscodeError(f"the peer accepted no context for {instance.sop_class_uid}")
            dataset = prepare(data, accepted)
        except TranscodeError as exc:
            log.warning("sub-operation %s failed: %s", sop, exc.reason)
            yield PENDING, _unsendable(instance)
            continue
        except Exception as exc:  # noqa: BLE001 - a bad object fails this one only
            log.warning("sub-operation %s failed: stored object unreadable: %r", sop, exc)
            yield PENDING, _unsendable(instance)
            continue
        yield PENDING, dataset


def audit_retrieve(
    recorder: AuditRecorder | None,
    action: str,
    assoc: Any,
    instances: Sequence[CatalogInstance],
    failure: str = "",
    destination: str = "",
) -> None:
    """One audit entry per series a C-MOVE/C-GET sends (or one failure with its reason)."""
    if recorder is None:
        return
    calling = assoc.requestor.ae_title.strip()
    address = str(assoc.requestor.address)
    user = user_name(assoc)
    to = f" to {destination}" if destination else ""
    if failure:
        recorder.record(dimse_entry(action, "failure", calling, address, failure + to, user))
        return
    series: dict[tuple[str, str], int] = {}
    for item in instances:
        key = (item.study_instance_uid, item.series_instance_uid)
        series[key] = series.get(key, 0) + 1
    for (study, one_series), count in series.items():
        detail = f"{count} instance(s){to}"
        recorder.record(
            dimse_entry(
                action,
                "success",
                calling,
                address,
                detail,
                user,
                study_instance_uid=study,
                series_instance_uid=one_series,
            )
        )
