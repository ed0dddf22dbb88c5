"""`pacs up` runs the ATNA exporter only when there is a syslog receiver to send to."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from pathlib import Path

from apps.audit_export import BATCH_MESSAGES, deliver_all
from infra.atna.syslog import SyslogSender
from infra.settings import AtnaSettings, Settings
from infra.stack import LocalStack


def names(settings: Settings) -> list[str]:
    return [p.name for p in LocalStack(settings).app_processes()]


def test_exporter_runs_only_with_a_syslog_url(tmp_path: Path) -> None:
    plain = Settings(data_dir=tmp_path)
    assert "audit-export" not in names(plain)
    configured = plain.model_copy(update={"atna": AtnaSettings(syslog_url="tls://audit:6514")})
    assert names(configured) == ["gateway", "api", "worker", "dispatcher", "audit-export"]
    (exporter,) = [p for p in LocalStack(configured).app_processes() if p.name == "audit-export"]
    assert exporter.argv[-1] == "audit-export"
    assert exporter.env["PACS_ATNA__SYSLOG_URL"] == "tls://audit:6514"


class Recording(SyslogSender):
    def __init__(self, fail_at: int | None = None) -> None:
        self.writes: list[int] = []
        self.fail_at = fail_at

    async def deliver(self, frames: Sequence[bytes], stop: asyncio.Event) -> bool:
        if len(self.writes) == self.fail_at:
            return False  # stopped while the receiver was away
        self.writes.append(len(frames))
        return True


async def test_a_large_poll_goes_out_in_bounded_writes() -> None:
    frames = [b"x"] * (2 * BATCH_MESSAGES + 5)
    sender = Recording()
    assert await deliver_all(sender, frames, asyncio.Event())
    assert sender.writes == [BATCH_MESSAGES, BATCH_MESSAGES, 5]
    # Stopped midway: not all delivered, so the poll's offsets must not be committed.
    assert not await deliver_all(Recording(fail_at=1), frames, asyncio.Event())
    assert await deliver_all(Recording(), [], asyncio.Event())
