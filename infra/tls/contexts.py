"""SSL contexts of the node's TLS listeners (DIMSE and HTTPS) and of its TLS clients.

Profile: TLS 1.2 or 1.3 only; for TLS 1.2 only forward-secret AEAD cipher suites (ECDHE or
DHE with AES-GCM or ChaCha20-Poly1305), as DICOM's BCP 195 profiles (PS3.15 B.9) and
RFC 9325 ask; no compression, no renegotiation. TLS 1.3 suites are OpenSSL's, all AEAD.
"""

from __future__ import annotations

import logging
import ssl
from dataclasses import dataclass
from pathlib import Path

from infra.settings import ClientCertificates, Settings
from infra.tls.authority import CertsLayout

log = logging.getLogger(__name__)

TLS12_CIPHERS = "ECDHE+AESGCM:ECDHE+CHACHA20:DHE+AESGCM:DHE+CHACHA20:!aNULL:!eNULL"


class TlsConfigError(ValueError):
    """The configured certificate files are missing or do not fit together."""


@dataclass(frozen=True)
class ServerCredentials:
    """The certificate and key the node serves with, and the CA(s) it trusts for clients."""

    cert_file: Path
    key_file: Path
    ca_file: Path | None


def server_credentials(settings: Settings) -> ServerCredentials | None:
    """The configured files (PACS_TLS__*), else what `pacs certs init` wrote; None when there
    is no certificate (TLS listeners stay off). A configured file that is missing is an error:
    an operator who pointed at a certificate expects TLS."""
    layout = CertsLayout(settings.certs_dir)
    tls = settings.tls
    if tls.cert_file is not None or tls.key_file is not None:
        if tls.cert_file is None or tls.key_file is None:
            raise TlsConfigError("PACS_TLS__CERT_FILE and PACS_TLS__KEY_FILE go together")
        for path in (tls.cert_file, tls.key_file, tls.ca_file):
            if path is not None and not path.is_file():
                raise TlsConfigError(f"TLS file {path} does not exist")
        return ServerCredentials(tls.cert_file, tls.key_file, tls.ca_file)
    if not (layout.server_cert.is_file() and layout.server_key.is_file()):
        return None
    ca = tls.ca_file or (layout.ca_cert if layout.ca_cert.is_file() else None)
    if ca is not None and not ca.is_file():
        raise TlsConfigError(f"TLS file {ca} does not exist")
    return ServerCredentials(layout.server_cert, layout.server_key, ca)


def _harden(context: ssl.SSLContext) -> ssl.SSLContext:
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.set_ciphers(TLS12_CIPHERS)
    context.options |= ssl.OP_NO_COMPRESSION | ssl.OP_NO_RENEGOTIATION
    return context


def server_context(
    credentials: ServerCredentials, client_certificates: ClientCertificates | None = None
) -> ssl.SSLContext:
    """A listener's context. `client_certificates` None: no client certificate is asked for
    (HTTPS: callers log in); otherwise one is asked for and, when presented, must chain to
    the CA file; REQUIRED refuses a handshake without one."""
    context = _harden(ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER))
    try:
        context.load_cert_chain(credentials.cert_file, credentials.key_file)
    except (ssl.SSLError, OSError) as exc:
        raise TlsConfigError(
            f"cannot use {credentials.cert_file} with {credentials.key_file}: {exc}"
        ) from exc
    if client_certificates is None:
        return context
    if credentials.ca_file is None:
        if client_certificates == ClientCertificates.REQUIRED:
            raise TlsConfigError("client certificates are required but no CA file is configured")
        return context  # nothing to verify a client certificate against: none is asked for
    try:
        context.load_verify_locations(cafile=credentials.ca_file)
    except (ssl.SSLError, OSError) as exc:
        raise TlsConfigError(f"cannot load CA file {credentials.ca_file}: {exc}") from exc
    context.verify_mode = (
        ssl.CERT_REQUIRED
        if client_certificates == ClientCertificates.REQUIRED
        else ssl.CERT_OPTIONAL
    )
    return context


def client_context(
    ca_file: Path | None = None,
    cert_file: Path | None = None,
    key_file: Path | None = None,
    verify: bool = True,
) -> ssl.SSLContext:
    """A client's context: trusts `ca_file` (else the system's store), shows the client
    certificate when given; `verify` False accepts any server (labs only)."""
    context = _harden(ssl.create_default_context(cafile=str(ca_file) if ca_file else None))
    if not verify:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    if cert_file is not None:
        context.load_cert_chain(cert_file, key_file)
    return context
