"""`pacs certs`: the local CA, the server certificate and client certificates as files a TLS
peer accepts (checked with Python's ssl, as any OpenSSL peer would), kept unless forced."""

from __future__ import annotations

import contextlib
import ssl
import stat
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.x509.oid import NameOID
from typer.testing import CliRunner

from apps.cli import app
from infra.settings import get_settings
from infra.tls.authority import CertificateError, CertsLayout, init_authority, issue_client


def _cert(path: Path) -> x509.Certificate:
    return x509.load_pem_x509_certificate(path.read_bytes())


def test_init_makes_a_ca_and_a_server_certificate_peers_can_verify(tmp_path: Path) -> None:
    layout = CertsLayout(tmp_path / "certs")
    ca, server = init_authority(layout, "PACS", ["pacs.hospital.example", "10.0.4.2"])
    assert ca.created and server.created
    for key in (layout.ca_key, layout.server_key):
        assert stat.S_IMODE(key.stat().st_mode) == 0o600
    names = (
        _cert(layout.server_cert)
        .extensions.get_extension_for_class(x509.SubjectAlternativeName)
        .value
    )
    dns = set(names.get_values_for_type(x509.DNSName))
    ips = {str(ip) for ip in names.get_values_for_type(x509.IPAddress)}
    assert {"localhost", "PACS", "pacs.hospital.example"} <= dns
    assert {"127.0.0.1", "::1", "10.0.4.2"} <= ips
    # A client trusting the CA accepts the server certificate for localhost.
    server_side = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_side.load_cert_chain(layout.server_cert, layout.server_key)
    client_side = ssl.create_default_context(cafile=str(layout.ca_cert))
    incoming = ssl.MemoryBIO()
    back_in, back_out = ssl.MemoryBIO(), ssl.MemoryBIO()
    client = client_side.wrap_bio(back_in, incoming, server_hostname="localhost")
    server_end = server_side.wrap_bio(incoming, back_out, server_side=True)
    for _ in range(10):
        for end in (client, server_end):
            with contextlib.suppress(ssl.SSLWantReadError):
                end.do_handshake()
        # Shuttle the server's bytes to the client (the client's go straight to the server).
        if back_out.pending:
            back_in.write(back_out.read())
    assert client.version() in ("TLSv1.2", "TLSv1.3")


def test_init_is_idempotent_unless_forced(tmp_path: Path) -> None:
    layout = CertsLayout(tmp_path)
    init_authority(layout, "PACS", [])
    first_ca, first_server = layout.ca_cert.read_bytes(), layout.server_cert.read_bytes()
    ca, server = init_authority(layout, "PACS", [])
    assert not ca.created and not server.created
    assert layout.ca_cert.read_bytes() == first_ca
    ca, server = init_authority(layout, "PACS", [], force=True)
    assert ca.created and server.created
    assert layout.ca_cert.read_bytes() != first_ca
    assert layout.server_cert.read_bytes() != first_server
    # The new server certificate is signed by the new CA.
    assert _cert(layout.server_cert).issuer == _cert(layout.ca_cert).subject


def test_a_client_certificate_names_its_ae_title(tmp_path: Path) -> None:
    layout = CertsLayout(tmp_path)
    with pytest.raises(CertificateError, match="pacs certs init"):
        issue_client(layout, "WS1")
    init_authority(layout, "PACS", [])
    issued = issue_client(layout, "WS 1/A")
    assert issued.cert == tmp_path / "clients" / "WS_1_A.pem"
    subject = _cert(issued.cert).subject
    assert subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == "WS 1/A"
    assert stat.S_IMODE(issued.key.stat().st_mode) == 0o600
    assert not issue_client(layout, "WS 1/A").created
    for bad in ("", "   ", "A" * 17, "BACK\\SLASH"):
        with pytest.raises(CertificateError, match="not an AE title"):
            issue_client(layout, bad)


def test_a_bad_extra_host_name_is_refused(tmp_path: Path) -> None:
    with pytest.raises(CertificateError, match="neither a host name nor an IP address"):
        init_authority(CertsLayout(tmp_path), "PACS", ["not a host!"])


def test_the_cli_writes_under_the_data_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PACS_DATA_DIR", str(tmp_path / "data"))
    get_settings.cache_clear()
    try:
        runner = CliRunner()
        result = runner.invoke(app, ["certs", "init", "--client", "WS1"])
        assert result.exit_code == 0, result.output
        certs = tmp_path / "data" / "certs"
        assert f"{certs / 'ca.pem'} (created)" in result.output
        assert f"{certs / 'clients' / 'WS1.pem'} (created)" in result.output
        again = runner.invoke(app, ["certs", "init"])
        assert f"{certs / 'server.pem'} (kept)" in again.output
        bad = runner.invoke(app, ["certs", "client", "BACK\\SLASH"])
        assert bad.exit_code == 2
        assert "not an AE title" in bad.output
    finally:
        get_settings.cache_clear()


def test_the_cli_adds_the_configured_listening_addresses(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PACS_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("PACS_DICOM__TLS_HOST", "10.0.4.2")
    monkeypatch.setenv("PACS_HTTP__TLS_HOST", "0.0.0.0")
    get_settings.cache_clear()
    try:
        result = CliRunner().invoke(app, ["certs", "init", "--host", "pacs.example"])
    finally:
        get_settings.cache_clear()
    assert result.exit_code == 0, result.output
    names = (
        _cert(tmp_path / "certs" / "server.pem")
        .extensions.get_extension_for_class(x509.SubjectAlternativeName)
        .value
    )
    assert "pacs.example" in names.get_values_for_type(x509.DNSName)
    ips = {str(ip) for ip in names.get_values_for_type(x509.IPAddress)}
    assert "10.0.4.2" in ips and "0.0.0.0" not in ips
