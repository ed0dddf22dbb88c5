"""Records PHI accesses and security decisions without making anyone wait for them.

`record` appends to a queue (any thread, a few hundred nanoseconds); a task on the process's
event loop publishes what has gathered as one `pacs.audit.recorded` event every
`PACS_AUDIT__FLUSH_SECONDS` (or sooner, once MAX_BATCH entries wait). A log outage keeps
the entries (up to MAX_PENDING, then the oldest are dropped with an error in the process
log) and publishes them once the log is back, so a query's latency never includes the
audit trail's.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from datetime import UTC, datetime
from typing import Any

from infra.eventlog import EventPublisher
from schemas.audit import AccessEntry, Outcome
from schemas.events import AccessAudited

log = logging.getLogger(__name__)

# Each batch is one event to publish, one write of the broker to its object store and a
# fetch by every consumer: on two cores that burst slows the queries being audited, so
# fewer and larger batches (infra/settings.py AuditSettings has the measurements).
FLUSH_SECONDS = 5.0
# Checked this often between flushes, so a full batch goes at once.
TICK_SECONDS = 0.5
MAX_BATCH = 2_000
MAX_PENDING = 200_000


class AuditRecorder:
    def __init__(
        self, publisher: EventPublisher, source: str, flush_seconds: float = FLUSH_SECONDS
    ) -> None:
        self.publisher = publisher
        self.source = source
        self.flush_seconds = flush_seconds
        # deque.append and popleft are atomic: handler threads append, the loop drains.
        self._pending: deque[AccessEntry] = deque(maxlen=MAX_PENDING)

    def record(self, entry: AccessEntry) -> None:
        if len(self._pending) == MAX_PENDING:
            log.error("audit backlog full (%d): the oldest entry is dropped", MAX_PENDING)
        self._pending.append(entry)

    async def run(self, stop: asyncio.Event) -> None:
        """Flush every `flush_seconds` (a full batch at once) until `stop`, then once more."""
        loop = asyncio.get_running_loop()
        due = loop.time() + self.flush_seconds
        while not stop.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), min(TICK_SECONDS, self.flush_seconds))
            if loop.time() >= due or len(self._pending) >= MAX_BATCH:
                await self.flush()
                due = loop.time() + self.flush_seconds
        await self.flush()

    async def flush(self) -> None:
        while self._pending:
            batch = [self._pending.popleft() for _ in range(min(MAX_BATCH, len(self._pending)))]
            try:
                await self.publisher.publish(AccessAudited(source=self.source, entries=batch))
            except Exception as exc:  # noqa: BLE001 - kept for the next flush, whatever failed
                log.warning("audit entries not published yet (%d kept): %r", len(batch), exc)
                self._pending.extendleft(reversed(batch))
                return


# DICOM JSON tags of a match → the audit entry's fields (QIDO results, C-FIND matches).
_SUBJECT_TAGS = {
    "00100020": "patient_id",
    "0020000D": "study_instance_uid",
    "0020000E": "series_instance_uid",
    "00080018": "sop_instance_uid",
}


def subject_of(match: dict[str, Any]) -> dict[str, str]:
    """Whose data one DICOM JSON match is."""
    return {
        name: str(values[0])
        for tag, name in _SUBJECT_TAGS.items()
        if (values := match.get(tag, {}).get("Value"))
    }


def access_entry(
    action: str,
    outcome: Outcome,
    actor: str,
    via: str,
    address: str,
    detail: str = "",
    calling_ae: str = "",
    **subject: str,
) -> AccessEntry:
    """An entry, built without validation (every field is ours): this is on the query path."""
    return AccessEntry.model_construct(
        occurred_at=datetime.now(UTC),
        action=action,
        outcome=outcome,
        actor=actor,
        via=via,
        address=address,
        calling_ae=calling_ae,
        patient_id=subject.get("patient_id", ""),
        study_instance_uid=subject.get("study_instance_uid", ""),
        series_instance_uid=subject.get("series_instance_uid", ""),
        sop_instance_uid=subject.get("sop_instance_uid", ""),
        detail=detail,
    )


def dimse_entry(
    action: str,
    outcome: Outcome,
    calling_ae: str,
    address: str,
    detail: str = "",
    user: str = "",
    **subject: str,
) -> AccessEntry:
    """An entry for a DIMSE request: who is the user the association identified (User
    Identity Negotiation), else the calling AE."""
    return access_entry(
        action, outcome, user or calling_ae, "dimse", address, detail, calling_ae, **subject
    )
