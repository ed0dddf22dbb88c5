"""C-FIND SCP for Patient Root and Study Root Query/Retrieve, answered from the catalog.

The identifier becomes match keys and return keys; the API process (which owns the
catalog) matches them per PS3.4 C.2.2.2 and returns one dataset per entity at the asked
level; each comes back as a pending response holding exactly the keys that were asked for.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from typing import Any

from pydicom.dataset import Dataset
from pydicom.multival import MultiValue
from pynetdicom.sop_class import (  # type: ignore[attr-defined]
    PatientRootQueryRetrieveInformationModelFind,
    StudyRootQueryRetrieveInformationModelFind,
)

from infra.audit_recorder import AuditRecorder, dimse_entry, subject_of
from infra.dicom.statuses import (
    CANCELLED,
    IDENTIFIER_MISMATCH,
    OUT_OF_RESOURCES,
    PENDING,
    UNABLE_TO_PROCESS,
    status_dataset,
)
from infra.internal_api import ApiRefused, ApiUnavailable, InternalApi
from ingest.dimse.access import scope_of, user_name
from ingest.dimse.identifier_bytes import match_values
from schemas.audit import Outcome
from schemas.security import StudyRuleModel

log = logging.getLogger(__name__)

FIND_SOP_CLASSES = (
    PatientRootQueryRetrieveInformationModelFind,
    StudyRootQueryRetrieveInformationModelFind,
)
LEVELS = {
    str(PatientRootQueryRetrieveInformationModelFind): ("PATIENT", "STUDY", "SERIES", "IMAGE"),
    str(StudyRootQueryRetrieveInformationModelFind): ("STUDY", "SERIES", "IMAGE"),
}
_NOT_KEYS = {"QueryRetrieveLevel", "SpecificCharacterSet"}
UTF8 = "ISO_IR 192"
# Matches fetched from the catalog per request: the gateway holds one page, not the result.
FIND_PAGE_SIZE = 2_000


def match_value(value: Any) -> str:
    """An identifier value in its DICOM string form (UID lists joined by backslashes)."""
    if value is None:
        return ""
    if isinstance(value, MultiValue | list):
        return "\\".join(str(v) for v in value)
    return str(value)


def identifier_keys(identifier: Dataset) -> tuple[dict[str, str], list[str]]:
    """Match keys (non-empty values) and return keys (every element) of an identifier."""
    filters: dict[str, str] = {}
    keys: list[str] = []
    for elem in identifier:
        keyword = elem.keyword
        if not keyword or keyword in _NOT_KEYS:
            continue
        keys.append(keyword)
        if elem.VR != "SQ":  # sequence matching is not supported: returned empty
            value = match_value(elem.value)
            if value:
                filters[keyword] = value
    return filters, keys


def response_identifier(identifier: Dataset, match: dict[str, Any], level: str) -> Dataset:
    """Exactly the requested keys, filled from the match (empty where we hold no value)."""
    answer = Dataset()
    plain = True
    for elem in identifier:
        if elem.keyword == "QueryRetrieveLevel":
            continue
        found = match.get(f"{elem.tag:08X}")
        if found is None:
            answer.add_new(elem.tag, elem.VR, None if elem.VR != "SQ" else [])
            continue
        values = match_values(found)
        plain = plain and all(not isinstance(v, str) or v.isascii() for v in values)
        answer.add_new(elem.tag, found["vr"], values[0] if len(values) == 1 else values or None)
    answer.QueryRetrieveLevel = level
    if not plain:
        # The catalog holds Unicode text: say so, or the peer reads it as ASCII (PS3.5 6.1).
        answer.SpecificCharacterSet = UTF8
    return answer


class FindHandler:
    """EVT_C_FIND: a generator of (status, identifier) pairs, as pynetdicom expects.

    Matches stream from the catalog page by page. Past `max_matches` the query ends with
    0xA700 (refused: out of resources) and an ErrorComment saying so, never with a success
    that would pass a truncated answer off as complete."""

    def __init__(
        self, catalog: InternalApi, max_matches: int, recorder: AuditRecorder | None = None
    ) -> None:
        self.catalog = catalog
        self.max_matches = max_matches
        self.recorder = recorder

    def __call__(self, event: Any) -> Iterator[tuple[Any, Dataset | None]]:
        identifier: Dataset = event.identifier
        sop_class = str(event.request.AffectedSOPClassUID)
        answers = self.answer(identifier, sop_class, lambda: event.is_cancelled, event.assoc)
        for status, match, level in answers:
            found = None if match is None else response_identifier(identifier, match, level)
            yield status, found

    def answer(
        self,
        identifier: Dataset,
        sop_class: str,
        cancelled: Callable[[], bool],
        assoc: Any = None,
    ) -> Iterator[tuple[Any, dict[str, Any] | None, str]]:
        """(status, match, level) per response: PENDING with the catalog's match, or a final
        status without one. Shared by the pynetdicom handler above and the direct responder
        (ingest/dimse/find_responder.py), which writes the match straight to bytes. Each
        match sent is an audit entry for the calling AE, after the last response."""
        sent: list[dict[str, str]] = []
        outcome: Outcome = "success"
        try:
            scope = scope_of(assoc)
            for status, match, level in self._answer(identifier, sop_class, cancelled, scope):
                if match is not None:
                    sent.append(subject_of(match))
                elif status is not PENDING and getattr(status, "Status", 0) not in (0, 0xFE00):
                    outcome = "failure"
                yield status, match, level
        finally:
            self._audit(assoc, sent, outcome, identifier)

    def _audit(
        self, assoc: Any, sent: list[dict[str, str]], outcome: Outcome, identifier: Dataset
    ) -> None:
        if self.recorder is None or assoc is None:
            return
        calling = assoc.requestor.ae_title.strip()
        address = str(assoc.requestor.address)
        user = user_name(assoc)
        level = str(identifier.get("QueryRetrieveLevel", ""))
        detail = f"level {level}, {len(sent)} match(es)"
        if not sent:
            self.recorder.record(dimse_entry("c-find", outcome, calling, address, detail, user))
        for subject in sent:
            self.recorder.record(
                dimse_entry("c-find", outcome, calling, address, detail, user, **subject)
            )

    def _answer(
        self,
        identifier: Dataset,
        sop_class: str,
        cancelled: Callable[[], bool],
        scope: list[StudyRuleModel] | None = None,
    ) -> Iterator[tuple[Any, dict[str, Any] | None, str]]:
        level = str(identifier.get("QueryRetrieveLevel", "") or "").strip().upper()
        allowed = LEVELS.get(sop_class, ())
        if level not in allowed:
            reason = f"QueryRetrieveLevel {level!r} is not one of {', '.join(allowed)}"
            yield status_dataset(IDENTIFIER_MISMATCH, reason), None, level
            return
        filters, keys = identifier_keys(identifier)
        if scope is not None and level == "PATIENT":
            # A patient's counts cover all their studies, some outside the scope: a scoped
            # user gets them empty (unknown) rather than a number that reveals the others.
            keys = [k for k in keys if not k.startswith("NumberOfPatientRelated")]
        sent = 0
        while True:
            # One more than the cap is asked for, to tell "exactly the cap" from "more".
            want = min(FIND_PAGE_SIZE, self.max_matches + 1 - sent)
            try:
                page = self.catalog.find(level, filters, keys, want, sent, scope)
            except ApiRefused as exc:
                log.info("C-FIND refused: %s", exc)
                yield status_dataset(IDENTIFIER_MISMATCH, str(exc)), None, level
                return
            except ApiUnavailable as exc:
                log.warning("C-FIND could not reach the catalog: %r", exc)
                yield status_dataset(UNABLE_TO_PROCESS, "catalog unavailable"), None, level
                return
            for match in page:
                if cancelled():
                    yield CANCELLED, None, level
                    return
                if sent == self.max_matches:
                    log.warning("C-FIND at %s level capped at %d matches", level, sent)
                    reason = f"more than {sent} matches: capped at {sent}; narrow the query"
                    yield status_dataset(OUT_OF_RESOURCES, reason), None, level
                    return
                sent += 1
                yield PENDING, match, level
            if len(page) < want:
                return
