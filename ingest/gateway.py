"""The DIMSE gateway process: the accept path's clients plus the pynetdicom server."""

from __future__ import annotations

import asyncio

from infra.settings import Settings
from ingest.dimse import FindRouter, serve_until
from ingest.landing import SpoolLanding
from ingest.modality_services import modality_handlers
from ingest.wiring import IngestClients


async def run_gateway(settings: Settings, stop: asyncio.Event) -> None:
    clients = await IngestClients.open(settings)
    if isinstance(clients.landing, SpoolLanding):
        clients.landing.clear_temp()
    services, worklist = modality_handlers(settings, asyncio.get_running_loop(), FindRouter())
    try:
        await serve_until(stop, settings.dicom, clients.acceptor, services)
    finally:
        worklist.close()
        await clients.close()
