"""`pacs certs init`, `pacs certs client AE`: a local CA and the node's TLS certificates.

Files go under <data_dir>/certs (keys 0600); the gateway serves DIMSE over TLS and the API
serves HTTPS once `server.pem` is there. Hospital-issued certificates are configured with
PACS_TLS__CERT_FILE / __KEY_FILE / __CA_FILE instead (docs/security.md).
"""

from __future__ import annotations

import typer

from infra.settings import get_settings
from infra.tls.authority import CertificateError, CertsLayout, Issued, init_authority, issue_client

_WILDCARDS = ("0.0.0.0", "::", "")
certs_app = typer.Typer(help="TLS certificates: a local CA, the server's and clients'.")

HOSTS = typer.Option(
    [], "--host", help="Another name or IP address for the server certificate (repeat)."
)
CLIENTS = typer.Option(
    [], "--client", help="Also issue a client certificate for this AE title (repeat)."
)


def _show(label: str, issued: Issued) -> None:
    state = "created" if issued.created else "kept"
    typer.echo(f"{label:<8} {issued.cert} ({state})")
    typer.echo(f"{'':<8} {issued.key} (private key, mode 0600)")


@certs_app.command("init")
def init(
    host: list[str] = HOSTS,
    client: list[str] = CLIENTS,
    force: bool = typer.Option(
        False, "--force", help="Replace the CA and server certificate (clients must be re-issued)."
    ),
) -> None:
    """Create the local CA and the server certificate (kept if they exist, unless --force)."""
    settings = get_settings()
    layout = CertsLayout(settings.certs_dir)
    # The addresses the listeners are configured on are names peers connect to, as well.
    listening = [settings.dicom.host, settings.dicom.tls_host, settings.http.host]
    listening += [settings.http.tls_host]
    hosts = [*host, *(name for name in listening if name and name not in _WILDCARDS)]
    try:
        ca, server = init_authority(layout, settings.dicom.ae_title, hosts, force)
        clients = [(title, issue_client(layout, title, force)) for title in client]
    except CertificateError as exc:
        typer.echo(str(exc), err=True)
        raise typer.Exit(2) from exc
    _show("CA", ca)
    _show("server", server)
    for title, issued in clients:
        _show(title, issued)
    typer.echo(
        f"DIMSE TLS on port {settings.dicom.tls_port}, HTTPS on port "
        f"{settings.http.tls_port} once the platform (re)starts; clients trust {ca.cert}."
    )


@certs_app.command("client")
def client(
    ae_title: str = typer.Argument(..., help="The AE title the certificate speaks for (its CN)."),
    force: bool = typer.Option(False, "--force", help="Replace an existing certificate."),
) -> None:
    """Issue a client certificate for an AE (mutual TLS), signed by the local CA."""
    layout = CertsLayout(get_settings().certs_dir)
    try:
        issued = issue_client(layout, ae_title, force)
    except CertificateError as exc:
        typer.echo(str(exc), err=True)
        raise typer.Exit(2) from exc
    _show(ae_title.strip(), issued)
    typer.echo(f"{'CA':<8} {layout.ca_cert}")


def register(app: typer.Typer) -> None:
    app.add_typer(certs_app, name="certs")
