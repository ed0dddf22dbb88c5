"""The node's certificates and the role table (admin only). Issuing a client certificate is
an event (`pacs.certificate.issued`), so it is in the audit trail and the ATNA export."""

from __future__ import annotations

import asyncio
from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, HTTPException, Path, Query
from pydantic import BaseModel

from api.deps import CallerDep, ServicesDep, publish_visible, require
from infra.auth.permissions import ROLE_PERMISSIONS, Permission
from infra.tls.authority import CertificateError, CertsLayout, issue_client
from infra.tls.inventory import CertificateInfo, certificate_info, inventory
from schemas.events import CertificateIssued

router = APIRouter(prefix="/api", tags=["security"], dependencies=[require(Permission.ADMIN)])

AeTitle = Annotated[str, Path(min_length=1, max_length=16, pattern=r"^[ -~]*[!-~][ -~]*$")]


class CertificateView(BaseModel):
    name: str
    subject: str
    not_after: datetime
    sha256: str
    path: str


class Certificates(BaseModel):
    """What `pacs certs init` (or this API) made under <data_dir>/certs; operator-provided
    files configured with PACS_TLS__* are not listed."""

    ca: CertificateView | None
    server: CertificateView | None
    clients: list[CertificateView]


class IssuedClient(CertificateView):
    """The certificate and its private key, for the AE's operator to install; the key is
    also kept under <data_dir>/certs/clients (mode 0600), like `pacs certs client`."""

    certificate_pem: str
    private_key_pem: str
    ca_pem: str


def _view(info: CertificateInfo) -> CertificateView:
    return CertificateView(
        name=info.name,
        subject=info.subject,
        not_after=info.not_after,
        sha256=info.sha256,
        path=str(info.path),
    )


@router.get("/certificates", response_model=Certificates)
async def list_certificates(services: ServicesDep) -> Certificates:
    ca, server, clients = await asyncio.to_thread(
        inventory, CertsLayout(services.settings.certs_dir)
    )
    return Certificates(
        ca=_view(ca) if ca else None,
        server=_view(server) if server else None,
        clients=[_view(c) for c in clients],
    )


@router.post("/certificates/clients/{ae_title}", response_model=IssuedClient, status_code=201)
async def issue_client_certificate(
    ae_title: AeTitle,
    services: ServicesDep,
    caller: CallerDep,
    force: Annotated[bool, Query(description="replace an existing certificate")] = False,
) -> IssuedClient:
    """A client certificate whose Common Name is the AE title (mutual TLS maps it to the
    node with that AE title); 409 when there is no CA yet (`pacs certs init`)."""
    layout = CertsLayout(services.settings.certs_dir)
    if not layout.ca_cert.exists():
        raise HTTPException(409, "no local CA: run `pacs certs init` first")
    try:
        issued = await asyncio.to_thread(issue_client, layout, ae_title, force)
    except CertificateError as exc:
        raise HTTPException(400, str(exc)) from exc
    info = await asyncio.to_thread(certificate_info, ae_title.strip(), issued.cert)
    if issued.created:
        event = CertificateIssued(
            ae_title=ae_title.strip(),
            sha256=info.sha256,
            not_after=info.not_after,
            actor=caller.name,
        )
        await publish_visible(services, event)
    return IssuedClient(
        **_view(info).model_dump(),
        certificate_pem=issued.cert.read_text(),
        private_key_pem=issued.key.read_text(),
        ca_pem=layout.ca_cert.read_text(),
    )


@router.get("/roles", response_model=dict[str, list[str]])
async def list_roles() -> dict[str, list[str]]:
    """Every role and the permissions it grants (infra/auth/permissions.py)."""
    return {
        role.value: sorted(p.value for p in permissions)
        for role, permissions in ROLE_PERMISSIONS.items()
    }
