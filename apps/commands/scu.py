"""`pacs echo|store|find|move|get`: DIMSE service-user commands against any remote AE.

Exit status: 0 success, 1 the peer answered with a failure (or some files failed),
2 no association (unreachable, rejected, aborted) or bad command-line input.
"""

from __future__ import annotations

import json
import ssl
import sys
from collections import Counter
from pathlib import Path
from typing import Annotated, NoReturn

import typer
from rich.console import Console
from rich.table import Table

from infra.scu.identifier import Level, Root
from infra.scu.peer import AssociationError, Peer, ScuError
from infra.tls.contexts import client_context

# Piped output is not cut at 80 columns: UIDs and paths stay whole.
console = Console(width=None if sys.stdout.isatty() else 250)
errors = Console(stderr=True, soft_wrap=True)

AeTitle = Annotated[str, typer.Option("--aet", help="Called AE title of the peer.")]
Host = Annotated[str, typer.Option(help="Peer host name or address.")]
Port = Annotated[int, typer.Option(help="Peer DICOM port.")]
CallingAe = Annotated[str, typer.Option("--calling-aet", help="Our AE title.")]
Timeout = Annotated[float, typer.Option(help="Seconds to wait for connect and answers.")]
Keys = Annotated[
    list[str] | None,
    typer.Option(
        "-k",
        "--key",
        help="Keyword=value to match (a\\\\b is a list), or Keyword to ask for it back.",
    ),
]
LevelOption = Annotated[Level, typer.Option(case_sensitive=False, help="Query/retrieve level.")]
RootOption = Annotated[Root, typer.Option(case_sensitive=False, help="Information model.")]
TlsOn = Annotated[bool, typer.Option("--tls", help="Connect with TLS (the peer's TLS port).")]
TlsCa = Annotated[
    Path | None,
    typer.Option("--tls-ca", help="CA file to trust (implies --tls; default: system store)."),
]
TlsCert = Annotated[
    Path | None, typer.Option("--tls-cert", help="Our client certificate (implies --tls).")
]
TlsKey = Annotated[Path | None, typer.Option("--tls-key", help="The client certificate's key.")]


def _peer(
    aet: str,
    host: str,
    port: int,
    calling_aet: str,
    timeout: float,
    tls: tuple[bool, Path | None, Path | None, Path | None] = (False, None, None, None),
) -> Peer:
    on, ca, cert, key = tls
    context = None
    if on or ca is not None or cert is not None:
        try:
            context = client_context(ca, cert, key)
        except (OSError, ssl.SSLError) as exc:
            errors.print(f"[red]error:[/red] TLS files: {exc}", highlight=False)
            raise typer.Exit(2) from exc
    return Peer(
        host=host,
        port=port,
        ae_title=aet,
        calling_ae_title=calling_aet,
        timeout=timeout,
        tls=context,
    )


def _fail(exc: ScuError) -> NoReturn:
    errors.print(f"[red]error:[/red] {exc.reason}", highlight=False)
    raise typer.Exit(2 if isinstance(exc, AssociationError) else 1)


def _status_text(status: int | None) -> str:
    from pynetdicom.status import code_to_category

    if status is None:
        return "not sent"
    return f"0x{status:04X} {code_to_category(status)}"


def echo(
    aet: AeTitle = "PACS",
    host: Host = "127.0.0.1",
    port: Port = 11112,
    calling_aet: CallingAe = "PACS-CLI",
    timeout: Timeout = 30.0,
    tls: TlsOn = False,
    tls_ca: TlsCa = None,
    tls_cert: TlsCert = None,
    tls_key: TlsKey = None,
) -> None:
    """C-ECHO: check that the peer answers DICOM."""
    from infra.scu.echo import echo as send_echo

    peer = _peer(aet, host, port, calling_aet, timeout, (tls, tls_ca, tls_cert, tls_key))
    try:
        elapsed = send_echo(peer)
    except ScuError as exc:
        _fail(exc)
    console.print(f"C-ECHO {peer}: success ({elapsed * 1000:.1f} ms)", highlight=False)


def store(
    paths: Annotated[list[Path], typer.Argument(help="DICOM files and folders (recursive).")],
    aet: AeTitle = "PACS",
    host: Host = "127.0.0.1",
    port: Port = 11112,
    calling_aet: CallingAe = "PACS-CLI",
    timeout: Timeout = 30.0,
    tls: TlsOn = False,
    tls_ca: TlsCa = None,
    tls_cert: TlsCert = None,
    tls_key: TlsKey = None,
    concurrency: Annotated[int, typer.Option(min=1, max=64, help="Associations.")] = 1,
    show_all: Annotated[bool, typer.Option("--all", help="List every file.")] = False,
) -> None:
    """C-STORE files and folders, over several associations at once if asked."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeRemainingColumn

    from infra.scu.store import FileResult, collect_files, store_files

    peer = _peer(aet, host, port, calling_aet, timeout, (tls, tls_ca, tls_cert, tls_key))
    try:
        files = collect_files(paths)
    except ScuError as exc:
        errors.print(f"[red]error:[/red] {exc.reason}", highlight=False)
        raise typer.Exit(2) from exc
    if not files:
        errors.print("[red]error:[/red] no files to send")
        raise typer.Exit(2)
    progress = Progress(
        "[progress.description]{task.description}",
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
        console=errors,
    )
    with progress:
        task = progress.add_task(f"C-STORE to {peer}", total=len(files))

        def advance(_: FileResult) -> None:
            progress.advance(task)

        try:
            results = store_files(peer, files, concurrency, advance)
        except ScuError as exc:
            progress.stop()
            _fail(exc)
    counts = Counter(_status_text(r.status) for r in results)
    table = Table(title=f"C-STORE to {peer}: {len(results)} files")
    table.add_column("file")
    table.add_column("SOP Instance UID")
    table.add_column("status")
    table.add_column("reason")
    for result in sorted(results, key=lambda r: str(r.path)):
        if show_all or not result.ok:
            style = None if result.ok else "red"
            table.add_row(
                str(result.path),
                result.sop_instance_uid,
                _status_text(result.status),
                result.reason,
                style=style,
            )
    for status, count in sorted(counts.items()):
        table.add_row("", "", f"{status}: {count}", "", style="bold", end_section=False)
    console.print(table)
    raise typer.Exit(0 if all(r.ok for r in results) else 1)


def find(
    level: LevelOption = Level.STUDY,
    root: RootOption = Root.STUDY,
    keys: Keys = None,
    aet: AeTitle = "PACS",
    host: Host = "127.0.0.1",
    port: Port = 11112,
    calling_aet: CallingAe = "PACS-CLI",
    timeout: Timeout = 30.0,
    tls: TlsOn = False,
    tls_ca: TlsCa = None,
    tls_cert: TlsCert = None,
    tls_key: TlsKey = None,
    as_json: Annotated[bool, typer.Option("--json", help="DICOM JSON instead of a table.")] = False,
) -> None:
    """C-FIND: list what matches, as a table or DICOM JSON."""
    from infra.scu.find import find as send_find

    peer = _peer(aet, host, port, calling_aet, timeout, (tls, tls_ca, tls_cert, tls_key))
    try:
        matches = send_find(peer, root, level, keys or [])
    except ScuError as exc:
        _fail(exc)
    if as_json:
        typer.echo(json.dumps([match.to_json_dict() for match in matches], indent=2))
        return
    columns: list[str] = []
    for match in matches:
        for element in match:
            if element.keyword and element.keyword not in columns and element.VR != "SQ":
                columns.append(element.keyword)
    table = Table(title=f"C-FIND {level.value} at {peer}: {len(matches)} matches")
    for column in columns:
        table.add_column(column)
    for match in matches:
        table.add_row(*(str(match.get(column, "") or "") for column in columns))
    console.print(table)


def _report_retrieve(what: str, outcome_status: int, counts: str, comment: str) -> None:
    line = f"{what}: {_status_text(outcome_status)}; {counts}"
    if comment:
        line += f"; {comment}"
    (console if outcome_status == 0 else errors).print(line, highlight=False)


def move(
    dest: Annotated[str, typer.Option(help="AE title the peer sends the matches to.")],
    level: LevelOption = Level.STUDY,
    root: RootOption = Root.STUDY,
    keys: Keys = None,
    aet: AeTitle = "PACS",
    host: Host = "127.0.0.1",
    port: Port = 11112,
    calling_aet: CallingAe = "PACS-CLI",
    timeout: Timeout = 30.0,
    tls: TlsOn = False,
    tls_ca: TlsCa = None,
    tls_cert: TlsCert = None,
    tls_key: TlsKey = None,
    receive_port: Annotated[
        int | None,
        typer.Option(help="Also receive them here: a Storage SCP on this port while moving."),
    ] = None,
    out: Annotated[Path, typer.Option(help="Folder for what --receive-port receives.")] = Path("."),
) -> None:
    """C-MOVE: have the peer send the matches to --dest (optionally to us, --receive-port)."""
    from contextlib import nullcontext

    from infra.scu.retrieve import move as send_move
    from infra.scu.retrieve import storage_receiver

    peer = _peer(aet, host, port, calling_aet, timeout, (tls, tls_ca, tls_cert, tls_key))
    receiver = (
        storage_receiver(dest, receive_port, out, lambda _: None)
        if receive_port is not None
        else nullcontext()
    )
    try:
        with receiver as writer:
            outcome = send_move(peer, root, level, keys or [], dest)
            received = len(writer.written) if writer is not None else None
    except ScuError as exc:
        _fail(exc)
    counts = f"{outcome.completed} completed, {outcome.failed} failed, {outcome.warning} warning"
    if received is not None:
        counts += f", {received} received in {out}"
    _report_retrieve(f"C-MOVE to {dest} via {peer}", outcome.status, counts, outcome.comment)
    for uid in outcome.failed_sop_instance_uids:
        errors.print(f"  failed: {uid}", highlight=False)
    raise typer.Exit(0 if outcome.ok else 1)


def get(
    out: Annotated[Path, typer.Option(help="Folder to write the received objects into.")],
    level: LevelOption = Level.STUDY,
    root: RootOption = Root.STUDY,
    keys: Keys = None,
    aet: AeTitle = "PACS",
    host: Host = "127.0.0.1",
    port: Port = 11112,
    calling_aet: CallingAe = "PACS-CLI",
    timeout: Timeout = 30.0,
    tls: TlsOn = False,
    tls_ca: TlsCa = None,
    tls_cert: TlsCert = None,
    tls_key: TlsKey = None,
) -> None:
    """C-GET: fetch the matches over the same association into --out."""
    from infra.scu.retrieve import get as send_get

    peer = _peer(aet, host, port, calling_aet, timeout, (tls, tls_ca, tls_cert, tls_key))
    try:
        outcome = send_get(peer, root, level, keys or [], out, lambda _: None)
    except ScuError as exc:
        _fail(exc)
    counts = (
        f"{outcome.completed} completed, {outcome.failed} failed, {outcome.warning} warning, "
        f"{len(outcome.received)} written to {out}"
    )
    _report_retrieve(f"C-GET from {peer}", outcome.status, counts, outcome.comment)
    for uid in outcome.failed_sop_instance_uids:
        errors.print(f"  failed: {uid}", highlight=False)
    raise typer.Exit(0 if outcome.ok else 1)


def register(app: typer.Typer) -> None:
    for command in (echo, store, find, move, get):
        app.command(command.__name__)(command)
