"""RFC 5424 messages with octet-counting framing, and a sender that loses nothing when the
receiver goes away: neither on a connection it closed while idle, nor on one it reset
with our batch unread."""

from __future__ import annotations

import asyncio
import socket
import struct
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import pytest

from infra.atna.syslog import SyslogHeader, SyslogSender, octet_counted, syslog_message
from infra.settings import AtnaSettings, syslog_endpoint

XML = b"<?xml version='1.0' encoding='utf-8'?><AuditMessage/>"
HEADER = SyslogHeader("pacs-host", "pacs", "api")
WHEN = datetime(2026, 12, 1, 10, 0, 0, 250000, tzinfo=UTC)


def test_message_is_rfc5424_with_bom_and_identity() -> None:
    message = syslog_message(XML, HEADER, 'e1/0"]', WHEN, success=True)
    assert message == (
        b"<85>1 2026-12-01T10:00:00.250000Z pacs-host pacs api IHE+RFC-3881 "
        b'[pacs@32473 id="e1/0\\"\\]"] \xef\xbb\xbf' + XML
    )
    failed = syslog_message(XML, SyslogHeader("my host", "", ""), "e1/1", WHEN, success=False)
    assert failed.startswith(b"<84>1 2026-12-01T10:00:00.250000Z myhost - - IHE+RFC-3881 ")


def test_octet_counting_counts_bytes() -> None:
    message = "é".encode() * 3
    assert octet_counted(message) == b"6 " + message


@pytest.mark.parametrize(
    ("url", "error"),
    [
        ("udp://host:514", "must start with tcp:// or tls://"),
        ("host:514", "must start with tcp:// or tls://"),
        ("tcp://host", "needs a host and a port"),
        ("tls://:6514", "needs a host and a port"),
        ("tcp://host:70000", "needs a host and a port"),
    ],
)
def test_bad_syslog_urls_say_what_is_wrong(url: str, error: str) -> None:
    with pytest.raises(ValueError, match=error):
        AtnaSettings(syslog_url=url)


def test_syslog_url_parts() -> None:
    assert syslog_endpoint("tls://audit.example:6514") == ("tls", "audit.example", 6514)
    assert syslog_endpoint("tcp://[::1]:514") == ("tcp", "::1", 514)
    with pytest.raises(ValueError, match="go together"):
        AtnaSettings(syslog_url="tls://h:1", cert_file="/x.pem")


class Receiver:
    """A syslog receiver on loopback that can close while idle, or reset with data unread."""

    def __init__(self) -> None:
        self.frames: list[bytes] = []
        self.connections: list[asyncio.StreamWriter] = []
        self.read = True
        self.server: asyncio.Server | None = None
        self.port = 0

    async def start(self, port: int = 0) -> None:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", port)
        self.port = self.server.sockets[0].getsockname()[1]

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections.append(writer)
        if not self.read:
            return  # accepts, reads nothing
        try:
            while True:
                length = int((await reader.readuntil(b" "))[:-1])
                self.frames.append(await reader.readexactly(length))
        except (asyncio.IncompleteReadError, ConnectionError):
            pass

    async def stop(self, reset: bool = False) -> None:
        assert self.server is not None
        self.server.close()
        for writer in self.connections:
            if reset:  # SO_LINGER 0: close sends RST, as a kernel does with unread data
                sock = writer.get_extra_info("socket")
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            writer.close()
        self.connections.clear()
        await self.server.wait_closed()


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    server = Receiver()
    await server.start()
    yield server
    if server.server is not None and server.server.is_serving():
        await server.stop()


def frames(*identities: str) -> list[bytes]:
    return [octet_counted(syslog_message(XML, HEADER, i, WHEN, True)) for i in identities]


def identities(receiver: Receiver) -> list[str]:
    return [f.split(b'id="')[1].split(b'"')[0].decode() for f in receiver.frames]


async def eventually(check: object, timeout: float = 5.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not check():  # type: ignore[operator]
        assert asyncio.get_running_loop().time() < deadline, "not in time"
        await asyncio.sleep(0.02)


async def test_a_connection_closed_while_idle_is_replaced_before_sending(
    receiver: Receiver, caplog: pytest.LogCaptureFixture
) -> None:
    sender = SyslogSender(AtnaSettings(syslog_url=f"tcp://127.0.0.1:{receiver.port}"))
    stop = asyncio.Event()
    assert await sender.deliver(frames("a/0", "a/1"), stop)
    await eventually(lambda: len(receiver.frames) == 2)
    # The receiver restarts on the same port; our old connection got its FIN meanwhile.
    await receiver.stop()
    await receiver.start(receiver.port)
    await asyncio.sleep(0.05)
    assert await sender.deliver(frames("b/0"), stop)
    await eventually(lambda: len(receiver.frames) == 3)
    assert identities(receiver) == ["a/0", "a/1", "b/0"]
    # Not by luck after a failed first try: the dead connection was never written to.
    assert [r.message for r in caplog.records if "not delivered" in r.message] == []
    await sender.close()


async def test_a_batch_reset_unread_is_sent_again(receiver: Receiver) -> None:
    sender = SyslogSender(
        AtnaSettings(
            syslog_url=f"tcp://127.0.0.1:{receiver.port}",
            confirm_seconds=0.5,
            retry_max_seconds=0.2,
        )
    )
    stop = asyncio.Event()
    receiver.read = False  # the receiver hangs: accepts, never reads
    delivery = asyncio.create_task(sender.deliver(frames("c/0"), stop))
    await eventually(lambda: len(receiver.connections) == 1)
    await asyncio.sleep(0.1)
    receiver.read = True
    await receiver.stop(reset=True)  # killed with our batch in its buffer
    await receiver.start(receiver.port)
    assert await asyncio.wait_for(delivery, 10)
    await eventually(lambda: len(receiver.frames) == 1)
    assert identities(receiver) == ["c/0"]
    await sender.close()


async def test_an_outage_is_retried_until_stopped() -> None:
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    sender = SyslogSender(AtnaSettings(syslog_url=f"tcp://127.0.0.1:{port}", retry_max_seconds=0.1))
    stop = asyncio.Event()
    delivery = asyncio.create_task(sender.deliver(frames("d/0"), stop))
    await asyncio.sleep(0.5)
    assert not delivery.done()
    stop.set()
    assert await asyncio.wait_for(delivery, 2) is False
