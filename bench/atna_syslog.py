"""How many A.5 audit messages per second the ATNA sender delivers to Debian's rsyslog over
TCP and over TLS (mutual authentication), in writes of 1,000 as the exporter makes them.

    .venv/bin/python bench/atna_syslog.py --messages 20000
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
from pathlib import Path

from apps.audit_export import BATCH_MESSAGES, deliver_all
from infra.atna.mapping import access_message
from infra.atna.message import AuditSource, to_xml
from infra.atna.syslog import SyslogHeader, SyslogSender, octet_counted, syslog_message
from infra.settings import AtnaSettings
from schemas.audit import AccessEntry
from tests.integration.rsyslog import Rsyslog, make_tls_files


def frames(count: int) -> list[bytes]:
    entry = AccessEntry(
        action="wado", outcome="success", actor="dr.bench", via="token", address="10.0.0.7",
        patient_id="BENCH-1", study_instance_uid="1.2.826.0.1.3680043.8.498.1",
        series_instance_uid="1.2.826.0.1.3680043.8.498.2",
        sop_instance_uid="1.2.826.0.1.3680043.8.498.3",
    )  # fmt: skip
    xml = to_xml(access_message(entry, AuditSource("PACS")))
    header = SyslogHeader("bench", "pacs", "api")
    return [
        octet_counted(syslog_message(xml, header, f"bench/{i}", entry.occurred_at, True))
        for i in range(count)
    ]


async def measure(label: str, rsyslog: Rsyslog, atna: AtnaSettings, batch: list[bytes]) -> None:
    rsyslog.start()
    sender = SyslogSender(atna)
    started = time.perf_counter()
    assert await deliver_all(sender, batch, asyncio.Event())
    sent = time.perf_counter() - started
    while len(rsyslog.received()) < len(batch):  # noqa: ASYNC110 - a file rsyslogd writes
        await asyncio.sleep(0.1)
    written = time.perf_counter() - started
    await sender.close()
    rsyslog.stop()
    print(
        f"{label}: {len(batch)} messages of {len(batch[0])} bytes, in writes of "
        f"{BATCH_MESSAGES}: delivered in {sent:.2f}s ({len(batch) / sent:.0f}/s), all in "
        f"rsyslog's file after {written:.2f}s"
    )


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--messages", type=int, default=20_000)
    parser.add_argument("--port", type=int, default=26514)
    args = parser.parse_args()
    batch = frames(args.messages)
    with tempfile.TemporaryDirectory() as work:
        root = Path(work)
        tcp = Rsyslog(root / "tcp", args.port)
        await measure("tcp", tcp, AtnaSettings(syslog_url=f"tcp://127.0.0.1:{args.port}"), batch)
        tls = make_tls_files(root / "pki")
        secure = Rsyslog(root / "tls", args.port + 1, tls)
        atna = AtnaSettings(
            syslog_url=f"tls://127.0.0.1:{args.port + 1}",
            ca_file=tls.ca,
            cert_file=tls.client_cert,
            key_file=tls.client_key,
        )
        await measure("tls", secure, atna, batch)


if __name__ == "__main__":
    asyncio.run(main())
