"""`pacs`: the one entry point for every process and operator command."""

from __future__ import annotations

import asyncio
import logging
import signal
from collections.abc import Callable, Coroutine
from typing import Any

import typer

from apps.commands import certs as certs_commands
from apps.commands import modality as modality_scu
from apps.commands import scu as scu_commands
from infra.settings import Settings, get_settings

app = typer.Typer(help="An event-sourced PACS.", no_args_is_help=True)
projections = typer.Typer(help="Read models built from the event log.")
app.add_typer(projections, name="projections")
modality_scu.register(app)
certs_commands.register(app)


def _logging() -> None:
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    # pynetdicom logs every PDU at INFO; that alone costs throughput.
    logging.getLogger("pynetdicom").setLevel(logging.WARNING)
    logging.getLogger("aiokafka").setLevel(logging.WARNING)


def _run_until_signal(main: Callable[[Settings, asyncio.Event], Coroutine[Any, Any, None]]) -> None:
    _logging()
    settings = get_settings()

    async def runner() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        await main(settings, stop)

    asyncio.run(runner())


@app.command()
def up(external: bool = typer.Option(False, help="Use the configured remote servers.")) -> None:
    """Start the whole platform in the foreground; Ctrl-C stops it all."""
    from infra.stack import run_foreground

    _logging()
    settings = get_settings()
    if external:
        settings = settings.model_copy(update={"external": True})
    raise typer.Exit(asyncio.run(run_foreground(settings)))


@app.command()
def gateway() -> None:
    """DIMSE gateway (C-ECHO, C-STORE SCP)."""
    from apps.gateway import run_gateway

    _run_until_signal(run_gateway)


@app.command()
def api() -> None:
    """HTTP API: DICOMweb, admin, health; owns the embedded ClickHouse and its projectors."""
    from api.app import create_app
    from apps.http_server import serve_api

    _logging()
    settings = get_settings()
    asyncio.run(serve_api(create_app(settings), settings))


@app.command()
def worker() -> None:
    """Temporal worker: archive workflows and activities."""
    from apps.worker import run_worker

    _run_until_signal(run_worker)


@app.command()
def dispatcher() -> None:
    """Event log → Temporal: starts and signals study workflows."""
    from apps.dispatcher import run_dispatcher

    _run_until_signal(run_dispatcher)


@app.command("audit-export")
def audit_export() -> None:
    """IHE ATNA: the audit trail as DICOM A.5 messages to the syslog receiver
    (PACS_ATNA__SYSLOG_URL)."""
    from apps.audit_export import run_audit_export

    _run_until_signal(run_audit_export)


@projections.command("rebuild")
def rebuild() -> None:
    """Drop every read model and rebuild it from offset zero (asks the running API, as the
    node's operator: the token is signed with the key in the data dir)."""
    import httpx

    from infra.auth.permissions import Role
    from infra.auth.tokens import service_token

    settings = get_settings()
    url = f"http://{settings.http.host}:{settings.http.port}/api/admin/projections/rebuild"
    token = service_token(settings, "cli", frozenset({Role.ADMIN}))()
    try:
        response = httpx.post(url, headers={"Authorization": f"Bearer {token}"}, timeout=10)
    except httpx.HTTPError as exc:
        typer.echo(f"cannot reach the API at {url}: {exc}; start the platform first", err=True)
        raise typer.Exit(2) from exc
    typer.echo(response.text)
    raise typer.Exit(0 if response.is_success else 1)


# Service-user commands after the server ones in --help.
scu_commands.register(app)

if __name__ == "__main__":
    app()
