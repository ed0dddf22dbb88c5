"""The ATNA exporter: the audit trail on the log → DICOM PS3.15 A.5 messages → syslog.

It reads with its own consumer group from the committed offsets and commits only after a
poll's messages were delivered (infra/atna/syslog.py says what "delivered" can mean on
syslog), so a receiver outage delays the trail and loses none of it: the batch is retried
with backoff and the offsets do not move. A new group starts at the beginning of the log,
so the first run sends the whole trail recorded so far.
"""

from __future__ import annotations

import asyncio
import logging

from infra.atna.export import AuditExport
from infra.atna.syslog import SyslogSender
from infra.eventlog import PollPacer, make_consumer
from infra.settings import Settings

log = logging.getLogger(__name__)

GROUP_ID = "pacs-audit-export"
MAX_RECORDS = 100
BATCH_MESSAGES = 1000


async def deliver_all(sender: SyslogSender, frames: list[bytes], stop: asyncio.Event) -> bool:
    """All of a poll's messages, in writes of at most BATCH_MESSAGES (one record may hold
    2,000 entries, a backlog after an outage many records)."""
    for start in range(0, len(frames), BATCH_MESSAGES):
        if not await sender.deliver(frames[start : start + BATCH_MESSAGES], stop):
            return False
    return True


async def run_audit_export(settings: Settings, stop: asyncio.Event) -> None:
    if not settings.atna.syslog_url:
        raise SystemExit("PACS_ATNA__SYSLOG_URL is not set: nowhere to send the audit trail")
    export = AuditExport(settings)
    try:
        sender = SyslogSender(settings.atna)
    except (OSError, ValueError) as exc:  # ssl.SSLError is an OSError
        raise SystemExit(f"PACS_ATNA__CA_FILE / CERT_FILE / KEY_FILE: {exc}") from exc
    consumer = make_consumer(settings.kafka, GROUP_ID)
    await consumer.start()
    pacer = PollPacer(settings.kafka.consumer_poll_interval_seconds)
    log.info("exporting the audit trail to %s", settings.atna.syslog_url)
    try:
        while not stop.is_set():
            await pacer.wait()
            polled = await consumer.getmany(timeout_ms=500, max_records=MAX_RECORDS)
            frames = export.batch(r for records in polled.values() for r in records)
            if not await deliver_all(sender, frames, stop):
                break  # stopping: these records stay uncommitted and are sent next time
            if polled:
                await consumer.commit()
                if frames:
                    log.info("delivered %d audit message(s)", len(frames))
    finally:
        await sender.close()
        await consumer.stop()
