"""The DIMSE gateway process: the accept path's clients plus the pynetdicom server."""

from __future__ import annotations

import asyncio

from pynetdicom import evt

from infra.settings import Settings
from ingest.catalog_client import CatalogClient, api_base_url
from ingest.dimse import FindRouter, StoreHandler, serve_until
from ingest.landing import SpoolLanding
from ingest.modality_services import modality_handlers
from ingest.qr_find import FIND_SOP_CLASSES, FindHandler
from ingest.wiring import IngestClients


async def run_gateway(settings: Settings, stop: asyncio.Event) -> None:
    clients = await IngestClients.open(settings)
    if isinstance(clients.landing, SpoolLanding):
        clients.landing.clear_temp()
    catalog = CatalogClient(api_base_url(settings))
    find = FindRouter()
    for sop_class in FIND_SOP_CLASSES:
        find.add(str(sop_class), FindHandler(catalog))
    modality, worklist = modality_handlers(settings, asyncio.get_running_loop(), find)
    handlers = [(evt.EVT_C_STORE, StoreHandler(clients.acceptor)), *modality]
    try:
        await serve_until(stop, settings.dicom, handlers)
    finally:
        worklist.close()
        catalog.close()
        await clients.close()
