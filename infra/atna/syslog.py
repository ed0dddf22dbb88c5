"""RFC 5424 syslog messages, framed by octet counting (RFC 6587 3.4.1 / RFC 5425 4.3), sent
over TCP or TLS to an audit record repository.

Syslog has no acknowledgement, so "delivered" can only mean "the receiver took the bytes off
the connection". Two checks stand for the missing acknowledgement:

- Before every batch: has the receiver closed its end (its FIN or RST has arrived)? After a
  receiver stops, a write on the old connection still "succeeds" locally and is lost; so a
  closed connection is replaced first.
- After writing, the connection must not be reset for `confirm_seconds`. A receiver that
  closes with our bytes unread makes its kernel answer with a reset (Linux does; so does any
  stack following RFC 2525 2.17); one that closes cleanly (FIN) had read everything first.
  A reset batch is sent again.

What stays at-least-once: a receiver that read a batch and was killed before writing it out
loses it, and a batch whose reset comes later than `confirm_seconds` is sent twice; every
message carries its identity in structured data so a repository can recognise a repeat.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import ssl
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from infra.settings import AtnaSettings, syslog_endpoint

log = logging.getLogger(__name__)

AUTHPRIV = 10  # RFC 5424 facility 10: security/authorization messages (ATNA)
NOTICE = 5
WARNING = 4
# DICOM PS3.15 A.5 / IHE ITI TF-2 3.20.7: the MSGID of an audit message in this format.
MSGID = "IHE+RFC-3881"
# Structured data carrying the message's identity (RFC 5424 6.3.2: a private SD-ID is
# name@<enterprise number>; 32473 is the number RFC 5612 reserves for examples).
SD_ID = "pacs@32473"
BOM = b"\xef\xbb\xbf"
CONNECT_TIMEOUT_SECONDS = 10.0
# A receiver that accepts but stops reading must not hold the exporter forever.
WRITE_TIMEOUT_SECONDS = 30.0


def _header_field(value: str, limit: int) -> str:
    """RFC 5424 header fields are printable US-ASCII without spaces; "-" when empty."""
    cleaned = "".join(c for c in value if 33 <= ord(c) <= 126)[:limit]
    return cleaned or "-"


def _param_value(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("]", "\\]")


@dataclass(frozen=True)
class SyslogHeader:
    hostname: str
    app_name: str
    procid: str = ""


def syslog_message(
    xml: bytes, header: SyslogHeader, identity: str, timestamp: datetime, success: bool
) -> bytes:
    """One RFC 5424 message: the audit XML as MSG (UTF-8 with BOM), its identity as SD."""
    priority = AUTHPRIV * 8 + (NOTICE if success else WARNING)
    if timestamp.tzinfo is None:
        timestamp = timestamp.replace(tzinfo=UTC)
    stamp = timestamp.astimezone(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")
    fields = " ".join(
        (
            f"<{priority}>1",
            stamp,
            _header_field(header.hostname, 255),
            _header_field(header.app_name, 48),
            _header_field(header.procid, 128),
            MSGID,
            f'[{SD_ID} id="{_param_value(identity)}"]',
        )
    )
    return fields.encode() + b" " + BOM + xml


def octet_counted(message: bytes) -> bytes:
    """RFC 6587 3.4.1 framing: `MSG-LEN SP SYSLOG-MSG`, the length in octets."""
    return str(len(message)).encode() + b" " + message


def client_context(settings: AtnaSettings) -> ssl.SSLContext:
    """TLS 1.2+ verifying the receiver (against `ca_file`, else the system's CAs), and
    presenting our certificate when one is configured (ATNA authenticates both nodes)."""
    context = ssl.create_default_context(cafile=str(settings.ca_file) if settings.ca_file else None)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    if settings.cert_file is not None and settings.key_file is not None:
        context.load_cert_chain(str(settings.cert_file), str(settings.key_file))
    return context


class ReceiverGone(ConnectionError):
    """The receiver reset the connection: what was written was not read."""


class SyslogSender:
    """One connection to the receiver, opened when needed, replaced when the receiver
    closed it."""

    def __init__(self, settings: AtnaSettings) -> None:
        scheme, self.host, self.port = syslog_endpoint(settings.syslog_url)
        self._ssl = client_context(settings) if scheme == "tls" else None
        self.confirm_seconds = settings.confirm_seconds
        self.retry_max_seconds = settings.retry_max_seconds
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None

    async def _open(self) -> None:
        self._reader, self._writer = await asyncio.wait_for(
            asyncio.open_connection(
                self.host,
                self.port,
                ssl=self._ssl,
                server_hostname=self.host if self._ssl else None,
            ),
            CONNECT_TIMEOUT_SECONDS,
        )
        log.info("connected to the audit receiver %s:%d", self.host, self.port)

    def _alive(self) -> bool:
        """False once the receiver's FIN or RST has arrived (a syslog receiver never sends
        anything else, so end-of-stream is the only thing the reader can hold)."""
        reader, writer = self._reader, self._writer
        if reader is None or writer is None:
            return False
        return not (reader.at_eof() or writer.is_closing() or not self._not_reset())

    def _not_reset(self) -> bool:
        """No reset has arrived: neither seen by the reader nor pending on the socket (after
        a FIN asyncio stops reading, so a later reset is only on the socket)."""
        reader, writer = self._reader, self._writer
        if reader is None or writer is None or reader.exception() is not None:
            return False
        sock = writer.get_extra_info("socket")
        if sock is None:
            return True
        try:
            error: int = sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
        except OSError:  # already closed: nothing pending on it
            return True
        return error == 0

    async def close(self) -> None:
        writer, self._reader, self._writer = self._writer, None, None
        if writer is not None:
            writer.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(writer.wait_closed(), 2)

    async def send(self, frames: Sequence[bytes]) -> None:
        """Write `frames`; returns once they count as delivered, else raises OSError."""
        await asyncio.sleep(0)  # let the loop take in a FIN or RST that has arrived
        if not self._alive():
            await self.close()
            await self._open()
        assert self._writer is not None
        self._writer.write(b"".join(frames))
        await asyncio.wait_for(self._writer.drain(), WRITE_TIMEOUT_SECONDS)
        if self.confirm_seconds:
            await asyncio.sleep(self.confirm_seconds)
        if not self._not_reset():
            raise ReceiverGone("the receiver reset the connection with the batch unread")

    async def deliver(self, frames: Sequence[bytes], stop: asyncio.Event) -> bool:
        """Send until delivered (True) or `stop` is set (False), backing off between tries."""
        delay = min(0.5, self.retry_max_seconds)
        while not stop.is_set():
            try:
                await self.send(frames)
                return True
            except (OSError, TimeoutError) as exc:
                log.warning(
                    "audit receiver %s:%d: %d message(s) not delivered (%r); retrying in %.1fs",
                    self.host,
                    self.port,
                    len(frames),
                    exc,
                    delay,
                )
                await self.close()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), delay)
            delay = min(delay * 2, self.retry_max_seconds)
        return False
