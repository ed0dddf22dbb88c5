"""A local certificate authority, made with `cryptography`: the CA, the node's server
certificate and client certificates for named AEs (`pacs certs init`, `pacs certs client`).

Keys are RSA 2048 (BCP 195 / RFC 9325: at least 2048 bits; every DICOM TLS peer we know
takes RSA) and written 0600; certificates are PEM, signed with SHA-256. A client
certificate's subject Common Name is the AE title it speaks for: the gateway maps a verified
certificate to an AE that way (ingest/dimse/access.py).
"""

from __future__ import annotations

import datetime
import ipaddress
import os
import re
import secrets
import socket
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

KEY_BITS = 2048
CA_DAYS = 10 * 365
LEAF_DAYS = 2 * 365
# A DNS label: an AE title like PACS may also be a host alias in a hospital's DNS.
_DNS_NAME = re.compile(r"^(?=.{1,253}$)([A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.?)+$")
_AE_TITLE = re.compile(r"^[^\\]*[^ \\][^\\]*$")
_SAFE_FILE = re.compile(r"[^A-Za-z0-9._-]")


class CertificateError(ValueError):
    """A certificate cannot be made (no CA yet, a bad AE title)."""


@dataclass(frozen=True)
class CertsLayout:
    """Where `pacs certs` keeps its files under <data_dir>/certs."""

    root: Path

    @property
    def ca_cert(self) -> Path:
        return self.root / "ca.pem"

    @property
    def ca_key(self) -> Path:
        return self.root / "ca.key"

    @property
    def server_cert(self) -> Path:
        return self.root / "server.pem"

    @property
    def server_key(self) -> Path:
        return self.root / "server.key"

    def client_cert(self, ae_title: str) -> Path:
        return self.root / "clients" / f"{_file_name(ae_title)}.pem"

    def client_key(self, ae_title: str) -> Path:
        return self.root / "clients" / f"{_file_name(ae_title)}.key"


@dataclass(frozen=True)
class Issued:
    """What one command wrote (or found in place)."""

    cert: Path
    key: Path
    created: bool


def _file_name(ae_title: str) -> str:
    return _SAFE_FILE.sub("_", check_ae_title(ae_title))


def check_ae_title(ae_title: str) -> str:
    title = ae_title.strip()
    if not title or len(title) > 16 or not _AE_TITLE.match(title):
        raise CertificateError(
            f"{ae_title!r} is not an AE title (1-16 characters, no backslash, not all spaces)"
        )
    return title


def _write_private(path: Path, data: bytes) -> None:
    """Atomically, readable by the owner only (a key never exists with wider rights)."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    temporary = path.with_name(f".{path.name}.{secrets.token_hex(4)}")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as out:
        out.write(data)
        out.flush()
        os.fsync(out.fileno())
    os.replace(temporary, path)


def _write_public(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    temporary = path.with_name(f".{path.name}.{secrets.token_hex(4)}")
    temporary.write_bytes(data)
    temporary.chmod(0o644)
    os.replace(temporary, path)


def _new_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=KEY_BITS)


def _key_pem(key: rsa.RSAPrivateKey) -> bytes:
    # Unencrypted PKCS#8: the processes start unattended; the file mode protects it.
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def _now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


def _load_ca(layout: CertsLayout) -> tuple[x509.Certificate, rsa.RSAPrivateKey]:
    if not layout.ca_cert.exists() or not layout.ca_key.exists():
        raise CertificateError(f"no CA in {layout.root}: run `pacs certs init` first")
    cert = x509.load_pem_x509_certificate(layout.ca_cert.read_bytes())
    key = serialization.load_pem_private_key(layout.ca_key.read_bytes(), password=None)
    if not isinstance(key, rsa.RSAPrivateKey):
        raise CertificateError(f"{layout.ca_key} is not an RSA key")
    return cert, key


def create_ca(layout: CertsLayout, name: str) -> Issued:
    key = _new_key()
    subject = x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "PACS local CA"),
            x509.NameAttribute(NameOID.COMMON_NAME, f"{name} local CA"),
        ]
    )
    now = _now()
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=CA_DAYS))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    _write_private(layout.ca_key, _key_pem(key))
    _write_public(layout.ca_cert, cert.public_bytes(serialization.Encoding.PEM))
    return Issued(layout.ca_cert, layout.ca_key, created=True)


def _issue(
    layout: CertsLayout,
    common_name: str,
    names: list[x509.GeneralName],
    usages: list[x509.ObjectIdentifier],
    cert_path: Path,
    key_path: Path,
) -> Issued:
    ca_cert, ca_key = _load_ca(layout)
    key = _new_key()
    now = _now()
    builder = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)]))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=LEAF_DAYS))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=True,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=False,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.ExtendedKeyUsage(usages), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
            critical=False,
        )
    )
    if names:
        builder = builder.add_extension(x509.SubjectAlternativeName(names), critical=False)
    cert = builder.sign(ca_key, hashes.SHA256())
    _write_private(key_path, _key_pem(key))
    _write_public(cert_path, cert.public_bytes(serialization.Encoding.PEM))
    return Issued(cert_path, key_path, created=True)


def server_names(ae_title: str, extra: list[str]) -> list[x509.GeneralName]:
    """SANs of the server certificate: loopback, this host's names, the AE title where it is
    also a valid DNS name, and whatever the operator adds (names or IP addresses)."""
    wanted = ["localhost", "127.0.0.1", "::1", socket.gethostname(), socket.getfqdn()]
    wanted += [ae_title, *extra]
    names: list[x509.GeneralName] = []
    seen: set[str] = set()
    for value in wanted:
        value = value.strip()
        if not value or value.lower() in seen:
            continue
        seen.add(value.lower())
        try:
            names.append(x509.IPAddress(ipaddress.ip_address(value)))
        except ValueError:
            if _DNS_NAME.match(value):
                names.append(x509.DNSName(value))
            elif value in extra:
                raise CertificateError(
                    f"{value!r} is neither a host name nor an IP address"
                ) from None
    return names


def init_authority(
    layout: CertsLayout, ae_title: str, hosts: list[str], force: bool = False
) -> tuple[Issued, Issued]:
    """The CA and the server certificate. Files in place are kept unless `force`; a new CA
    always gets a new server certificate (the old one would not chain to it)."""
    title = check_ae_title(ae_title)
    if force or not (layout.ca_cert.exists() and layout.ca_key.exists()):
        ca = create_ca(layout, title)
    else:
        ca = Issued(layout.ca_cert, layout.ca_key, created=False)
    server_present = layout.server_cert.exists() and layout.server_key.exists()
    if ca.created or force or not server_present:
        server = _issue(
            layout,
            title,
            server_names(title, hosts),
            # clientAuth too: the gateway presents it when it opens associations itself.
            [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH],
            layout.server_cert,
            layout.server_key,
        )
    else:
        server = Issued(layout.server_cert, layout.server_key, created=False)
    return ca, server


def issue_client(layout: CertsLayout, ae_title: str, force: bool = False) -> Issued:
    """A client certificate whose Common Name is `ae_title` (kept if present, unless `force`)."""
    title = check_ae_title(ae_title)
    cert, key = layout.client_cert(title), layout.client_key(title)
    if not force and cert.exists() and key.exists():
        return Issued(cert, key, created=False)
    return _issue(layout, title, [], [ExtendedKeyUsageOID.CLIENT_AUTH], cert, key)
