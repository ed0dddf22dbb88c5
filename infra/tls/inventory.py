"""What the local CA has issued, as the admin API lists it: subject, expiry, fingerprint."""

from __future__ import annotations

import datetime
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes

from infra.tls.authority import CertsLayout


@dataclass(frozen=True)
class CertificateInfo:
    name: str
    subject: str
    not_after: datetime.datetime
    sha256: str  # of the DER encoding, as `openssl x509 -fingerprint -sha256` shows it
    path: Path


def certificate_info(name: str, path: Path) -> CertificateInfo:
    cert = x509.load_pem_x509_certificate(path.read_bytes())
    return CertificateInfo(
        name,
        cert.subject.rfc4514_string(),
        cert.not_valid_after_utc,
        cert.fingerprint(hashes.SHA256()).hex(":").upper(),
        path,
    )


def inventory(
    layout: CertsLayout,
) -> tuple[CertificateInfo | None, CertificateInfo | None, list[CertificateInfo]]:
    """The CA, the server certificate and every client certificate present (None: absent)."""
    ca = certificate_info("ca", layout.ca_cert) if layout.ca_cert.exists() else None
    server = certificate_info("server", layout.server_cert) if layout.server_cert.exists() else None
    folder = layout.root / "clients"
    clients = [
        certificate_info(path.stem, path)
        for path in sorted(folder.glob("*.pem") if folder.is_dir() else [])
    ]
    return ca, server, clients
