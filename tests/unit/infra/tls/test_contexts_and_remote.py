"""Which certificate the listeners serve, and TLS options reaching the clients of remote
servers. No Kafka, Temporal or ClickHouse serving TLS runs here: those tests check the
client objects built from the settings; S3 is spoken to over real HTTPS on loopback."""

from __future__ import annotations

import http.server
import ssl
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import urllib3

from infra.clickhouse import ClickHouse
from infra.eventlog import EventPublisher, make_consumer
from infra.settings import (
    ClickHouseSettings,
    ClientCertificates,
    KafkaSettings,
    RemoteTlsSettings,
    S3Settings,
    Settings,
    TemporalSettings,
    TlsSettings,
)
from infra.stack.readiness import minio_client
from infra.storage.archive import make_minio
from infra.temporal_client import connect_temporal
from infra.tls.authority import CertsLayout, init_authority, issue_client
from infra.tls.contexts import (
    TlsConfigError,
    server_context,
    server_credentials,
)
from infra.tls.remote import clickhouse_options, kafka_options, temporal_tls


@pytest.fixture(scope="module")
def layout(tmp_path_factory: pytest.TempPathFactory) -> CertsLayout:
    layout = CertsLayout(tmp_path_factory.mktemp("data") / "certs")
    init_authority(layout, "PACS", [])
    issue_client(layout, "PACS-CLIENT")
    return layout


def test_no_certificate_no_tls(tmp_path: Path) -> None:
    assert server_credentials(Settings(data_dir=tmp_path)) is None


def test_generated_files_are_found_under_the_data_dir(layout: CertsLayout) -> None:
    credentials = server_credentials(Settings(data_dir=layout.root.parent))
    assert credentials is not None
    assert (credentials.cert_file, credentials.ca_file) == (layout.server_cert, layout.ca_cert)


def test_configured_files_win_and_must_exist(layout: CertsLayout, tmp_path: Path) -> None:
    tls = TlsSettings(
        cert_file=layout.client_cert("PACS-CLIENT"), key_file=layout.client_key("PACS-CLIENT")
    )
    credentials = server_credentials(Settings(data_dir=tmp_path, tls=tls))
    assert credentials is not None and credentials.cert_file == tls.cert_file
    assert credentials.ca_file is None
    missing = TlsSettings(cert_file=tmp_path / "nope.pem", key_file=layout.server_key)
    with pytest.raises(TlsConfigError, match=r"nope\.pem does not exist"):
        server_credentials(Settings(data_dir=tmp_path, tls=missing))
    with pytest.raises(TlsConfigError, match="go together"):
        server_credentials(Settings(data_dir=tmp_path, tls=TlsSettings(cert_file=tls.cert_file)))


def test_server_contexts(layout: CertsLayout, tmp_path: Path) -> None:
    credentials = server_credentials(Settings(data_dir=layout.root.parent))
    assert credentials is not None
    https = server_context(credentials)
    assert https.verify_mode == ssl.CERT_NONE  # HTTPS callers log in instead
    assert https.minimum_version == ssl.TLSVersion.TLSv1_2
    assert server_context(credentials, ClientCertificates.OPTIONAL).verify_mode == ssl.CERT_OPTIONAL
    assert server_context(credentials, ClientCertificates.REQUIRED).verify_mode == ssl.CERT_REQUIRED
    suites = {suite["name"] for suite in https.get_ciphers() if suite["protocol"] == "TLSv1.2"}
    assert suites and all("GCM" in name or "CHACHA20" in name for name in suites)
    assert all(name.startswith(("ECDHE", "DHE")) for name in suites)
    no_ca = credentials.__class__(credentials.cert_file, credentials.key_file, None)
    with pytest.raises(TlsConfigError, match="no CA file"):
        server_context(no_ca, ClientCertificates.REQUIRED)
    wrong_key = credentials.__class__(credentials.cert_file, layout.ca_key, None)
    with pytest.raises(TlsConfigError, match="cannot use"):
        server_context(wrong_key)


def _remote(layout: CertsLayout, **extra: Any) -> RemoteTlsSettings:
    return RemoteTlsSettings(
        enabled=True,
        ca_file=layout.ca_cert,
        cert_file=layout.client_cert("PACS-CLIENT"),
        key_file=layout.client_key("PACS-CLIENT"),
        **extra,
    )


async def test_kafka_clients_speak_ssl_with_our_context(layout: CertsLayout) -> None:
    assert kafka_options(RemoteTlsSettings()) == {}
    settings = KafkaSettings(tls=_remote(layout))
    publisher = EventPublisher(settings)
    consumer = make_consumer(settings, "group")
    try:
        for client in (publisher._producer.client, consumer._client):
            assert client._security_protocol == "SSL"
            context: ssl.SSLContext = client._ssl_context
            assert context.verify_mode == ssl.CERT_REQUIRED and context.check_hostname
            assert any("PACS local CA" in str(ca["subject"]) for ca in context.get_ca_certs())
    finally:
        await consumer.stop()
        await publisher.stop()
    with pytest.raises(TlsConfigError, match="does not exist"):
        kafka_options(RemoteTlsSettings(enabled=True, ca_file=Path("/nonexistent/ca.pem")))


async def test_temporal_gets_the_ca_and_client_certificate(
    layout: CertsLayout, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert temporal_tls(RemoteTlsSettings()) is False
    seen: dict[str, Any] = {}

    async def connect(address: str, **kwargs: Any) -> str:
        seen.update(kwargs, address=address)
        return "client"

    monkeypatch.setattr("infra.temporal_client.Client.connect", connect)
    settings = TemporalSettings(address="temporal.example:7233", tls=_remote(layout))
    assert await connect_temporal(settings) == "client"
    tls = seen["tls"]
    assert tls.server_root_ca_cert == layout.ca_cert.read_bytes()
    assert tls.client_cert == layout.client_cert("PACS-CLIENT").read_bytes()
    assert tls.client_private_key == layout.client_key("PACS-CLIENT").read_bytes()
    with pytest.raises(TlsConfigError, match="cannot skip verification"):
        temporal_tls(_remote(layout, verify=False))


def test_clickhouse_gets_https_options(
    layout: CertsLayout, monkeypatch: pytest.MonkeyPatch
) -> None:
    tls = _remote(layout)
    assert clickhouse_options("chdb:///data/clickhouse", tls) == {}
    assert clickhouse_options("http://ch:8123/pacs", RemoteTlsSettings()) == {}
    seen: dict[str, Any] = {}

    def get_client(**kwargs: Any) -> object:
        seen.update(kwargs)
        return object()

    monkeypatch.setattr("infra.clickhouse.clickhouse_connect.get_client", get_client)
    ClickHouse("https://ch.example:8443/pacs", ClickHouseSettings(tls=tls).tls)
    assert seen == {
        "dsn": "https://ch.example:8443/pacs",
        "secure": True,
        "verify": True,
        "ca_cert": str(layout.ca_cert),
        "client_cert": str(layout.client_cert("PACS-CLIENT")),
        "client_cert_key": str(layout.client_key("PACS-CLIENT")),
    }


class _EmptyBucketList(http.server.BaseHTTPRequestHandler):
    clients: list[str] = []

    def do_GET(self) -> None:
        cert = self.connection.getpeercert()  # type: ignore[attr-defined]
        subject = dict(rdn[0] for rdn in cert["subject"]) if cert else {}
        self.clients.append(subject.get("commonName", ""))
        body = (
            b'<?xml version="1.0" encoding="UTF-8"?><ListAllMyBucketsResult>'
            b"<Owner><ID>x</ID></Owner><Buckets></Buckets></ListAllMyBucketsResult>"
        )
        self.send_response(200)
        self.send_header("Content-Type", "application/xml")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def https_s3(layout: CertsLayout) -> Iterator[int]:
    """An HTTPS endpoint with our server certificate that asks for a client certificate."""
    credentials = server_credentials(Settings(data_dir=layout.root.parent))
    assert credentials is not None
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _EmptyBucketList)
    context = server_context(credentials, ClientCertificates.OPTIONAL)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield server.server_address[1]
    finally:
        server.shutdown()
        server.server_close()


def test_s3_over_https_trusts_the_configured_ca(layout: CertsLayout, https_s3: int) -> None:
    _EmptyBucketList.clients.clear()
    settings = S3Settings(endpoint=f"localhost:{https_s3}", secure=True, tls=_remote(layout))
    assert make_minio(settings).list_buckets() == []
    assert _EmptyBucketList.clients == ["PACS-CLIENT"]  # our client certificate was shown
    # The stack's readiness client (no retries): without our CA the system store is used.
    untrusting = S3Settings(endpoint=f"localhost:{https_s3}", secure=True)
    with pytest.raises(urllib3.exceptions.SSLError, match="CERTIFICATE_VERIFY_FAILED"):
        minio_client(untrusting).list_buckets()
    trusting = minio_client(S3Settings(endpoint=f"localhost:{https_s3}", tls=_remote(layout)))
    assert trusting.list_buckets() == []
    # verify=false (a lab): any certificate is accepted, no CA needed, and urllib3 says so.
    lab = RemoteTlsSettings(enabled=True, verify=False)
    with pytest.warns(urllib3.exceptions.InsecureRequestWarning):
        insecure = minio_client(S3Settings(endpoint=f"127.0.0.1:{https_s3}", tls=lab))
        assert insecure.list_buckets() == []
