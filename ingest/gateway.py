"""The DIMSE gateway process: the accept path's clients plus the pynetdicom server."""

from __future__ import annotations

import asyncio

from pynetdicom import evt

from infra.settings import Settings
from ingest.catalog_client import CatalogClient, api_base_url
from ingest.dimse import StoreHandler, serve_until
from ingest.landing import SpoolLanding
from ingest.qr_find import FindHandler
from ingest.wiring import IngestClients


async def run_gateway(settings: Settings, stop: asyncio.Event) -> None:
    clients = await IngestClients.open(settings)
    if isinstance(clients.landing, SpoolLanding):
        clients.landing.clear_temp()
    catalog = CatalogClient(api_base_url(settings))
    handlers = [
        (evt.EVT_C_STORE, StoreHandler(clients.acceptor)),
        (evt.EVT_C_FIND, FindHandler(catalog)),
    ]
    try:
        await serve_until(stop, settings.dicom, handlers)
    finally:
        catalog.close()
        await clients.close()
