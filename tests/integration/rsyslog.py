"""Debian's rsyslog as the audit record repository of the ATNA tests: `imtcp` on a test port
(plain, or TLS through the `ossl` stream driver with mutual authentication), every message
written raw, one JSON-escaped line per message."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

BOM = b"\xef\xbb\xbf"
# <PRI>1 TIMESTAMP HOSTNAME APP-NAME PROCID MSGID [SD] BOM MSG (RFC 5424 6)
RFC5424 = re.compile(
    rb'^<(\d+)>1 (\S+) (\S+) (\S+) (\S+) (\S+) \[pacs@32473 id="([^"]+)"\] \xef\xbb\xbf(.*)$',
    re.DOTALL,
)


@dataclass(frozen=True)
class Received:
    priority: int
    timestamp: str
    hostname: str
    app_name: str
    procid: str
    msgid: str
    identity: str
    xml: bytes


def parse(raw: bytes) -> Received:
    match = RFC5424.match(raw)
    assert match, f"not an RFC 5424 audit message: {raw[:200]!r}"
    pri, stamp, host, app, proc, msgid, identity, xml = match.groups()
    return Received(
        int(pri), stamp.decode(), host.decode(), app.decode(), proc.decode(), msgid.decode(),
        identity.decode(), xml,
    )  # fmt: skip


@dataclass(frozen=True)
class TlsFiles:
    ca: Path
    server_cert: Path
    server_key: Path
    client_cert: Path
    client_key: Path


def _write_key(path: Path, key: ec.EllipticCurvePrivateKey) -> None:
    path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )


def _certificate(
    subject: str,
    key: ec.EllipticCurvePrivateKey,
    issuer: tuple[x509.Name, ec.EllipticCurvePrivateKey] | None,
    ca: bool = False,
) -> x509.Certificate:
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)])
    issuer_name, issuer_key = issuer or (name, key)
    now = datetime.now(UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(issuer_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )
    if not ca:
        import ipaddress

        builder = builder.add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            ),
            critical=False,
        )
    return builder.sign(issuer_key, hashes.SHA256())


def make_tls_files(directory: Path) -> TlsFiles:
    """A test CA, the receiver's certificate (127.0.0.1) and ours, signed by it."""
    directory.mkdir(parents=True, exist_ok=True)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = _certificate("ATNA test CA", ca_key, None, ca=True)
    files = TlsFiles(
        ca=directory / "ca.pem",
        server_cert=directory / "server.pem",
        server_key=directory / "server.key",
        client_cert=directory / "client.pem",
        client_key=directory / "client.key",
    )
    files.ca.write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    for cert_path, key_path, subject in (
        (files.server_cert, files.server_key, "audit-repository"),
        (files.client_cert, files.client_key, "pacs"),
    ):
        key = ec.generate_private_key(ec.SECP256R1())
        cert = _certificate(subject, key, (ca.subject, ca_key))
        cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        _write_key(key_path, key)
    return files


class Rsyslog:
    """One rsyslogd in the foreground with its own config, work dir and output file."""

    def __init__(self, directory: Path, port: int, tls: TlsFiles | None = None) -> None:
        if shutil.which("rsyslogd") is None:
            pytest.fail("rsyslog is not installed: run `make debian-tools`")
        self.directory = directory
        self.port = port
        self.output = directory / "received.log"
        self.config = directory / "rsyslog.conf"
        self.pidfile = directory / "rsyslogd.pid"
        directory.mkdir(parents=True, exist_ok=True)
        self.config.write_text(self._config(tls))
        self._process: subprocess.Popen[bytes] | None = None

    def _config(self, tls: TlsFiles | None) -> str:
        # Control characters kept as sent; the file escapes each message as a JSON string.
        lines = [
            f'global(workDirectory="{self.directory}" maxMessageSize="256k"'
            ' parser.escapeControlCharactersOnReceive="off")'
        ]
        if tls is None:
            lines.append('module(load="imtcp")')
        else:
            lines += [
                f'global(defaultNetstreamDriver="ossl" defaultNetstreamDriverCAFile="{tls.ca}"'
                f' defaultNetstreamDriverCertFile="{tls.server_cert}"'
                f' defaultNetstreamDriverKeyFile="{tls.server_key}")',
                # x509/certvalid: only clients with a certificate from our CA (ATNA: mutual).
                'module(load="imtcp" streamDriver.name="ossl" streamDriver.mode="1"'
                ' streamDriver.authMode="x509/certvalid")',
            ]
        lines += [
            f'input(type="imtcp" port="{self.port}" address="127.0.0.1")',
            'template(name="raw" type="string" string="%rawmsg:::json%\\n")',
            f'action(type="omfile" file="{self.output}" template="raw")',
        ]
        return "\n".join(lines) + "\n"

    def start(self, timeout: float = 15.0) -> None:
        log = (self.directory / "rsyslogd.out").open("ab")
        self._process = subprocess.Popen(
            ["rsyslogd", "-n", "-f", str(self.config), "-i", str(self.pidfile)],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                raise AssertionError(f"rsyslogd exited: {(self.directory / 'rsyslogd.out')}")
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                return
            except OSError:
                time.sleep(0.1)
        raise AssertionError(f"rsyslogd not listening on {self.port} within {timeout}s")

    def stop(self) -> None:
        """SIGTERM, as a service manager stops it: it closes its connections and flushes."""
        process, self._process = self._process, None
        if process is None or process.poll() is not None:
            return
        os.kill(process.pid, signal.SIGTERM)
        try:
            process.wait(15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(5)

    def received(self) -> list[Received]:
        if not self.output.exists():
            return []
        lines = self.output.read_text(encoding="utf-8").splitlines()
        return [parse(json.loads(f'"{line}"').encode()) for line in lines if line]
