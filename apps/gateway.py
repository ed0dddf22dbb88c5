"""The DIMSE gateway process: the accept path's clients plus the pynetdicom server."""

from __future__ import annotations

import asyncio

from pynetdicom import evt

from infra.internal_api import InternalApi, api_base_url
from infra.settings import Settings
from infra.storage.landing import SpoolLanding
from infra.storage.locate import load_instance
from ingest.dimse.find import FIND_SOP_CLASSES, FindHandler
from ingest.dimse.get import GetHandler
from ingest.dimse.modality_services import modality_handlers
from ingest.dimse.move import MoveHandler
from ingest.dimse.retrieve import RetrieveSource
from ingest.dimse.server import FindRouter, StoreHandler, serve_until
from ingest.wiring import IngestClients
from schemas.catalog import CatalogInstance


async def run_gateway(settings: Settings, stop: asyncio.Event) -> None:
    clients = await IngestClients.open(settings)
    if isinstance(clients.landing, SpoolLanding):
        clients.landing.clear_temp()
    # One client of the API for every DIMSE service that reads a read model.
    catalog = InternalApi(api_base_url(settings))

    def load(instance: CatalogInstance) -> bytes | None:
        return load_instance(
            clients.landing,
            clients.archive,
            instance.study_instance_uid,
            instance.series_instance_uid,
            instance.sop_instance_uid,
        )

    retrieve = RetrieveSource(catalog=catalog, load=load)
    find = FindRouter()
    for sop_class in FIND_SOP_CLASSES:
        find.add(str(sop_class), FindHandler(catalog, settings.dicom.find_max_matches))
    publisher = clients.publisher
    modality = modality_handlers(
        settings, asyncio.get_running_loop(), find, catalog, lambda: dict(publisher.acknowledged)
    )
    handlers = [
        (evt.EVT_C_STORE, StoreHandler(clients.acceptor)),
        (evt.EVT_C_MOVE, MoveHandler(settings.dicom.remote_aes, retrieve)),
        (evt.EVT_C_GET, GetHandler(retrieve)),
        *modality,
    ]
    try:
        await serve_until(stop, settings.dicom, handlers, find)
    finally:
        catalog.close()
        await clients.close()
