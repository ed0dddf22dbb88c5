"""The DIMSE gateway process: the accept path's clients plus the pynetdicom server."""

from __future__ import annotations

import asyncio

from pynetdicom import evt

from apps.retrieve_leases import RetrieveLeases
from infra.audit_recorder import AuditRecorder
from infra.auth.tokens import service_token
from infra.dicom.coerce import coerce_patient
from infra.internal_api import InternalApi, api_base_url
from infra.metrics import serve_metrics_from
from infra.settings import Settings
from infra.storage.landing import SpoolLanding
from infra.storage.locate import load_instance
from infra.tls.contexts import client_context, server_context, server_credentials
from ingest.dimse.access import (
    AccessPolicy,
    Destinations,
    NodeDirectory,
    UserIdentityCheck,
    guarded,
    guarded_get,
    guarded_move,
)
from ingest.dimse.find import FIND_SOP_CLASSES, FindHandler
from ingest.dimse.get import GetHandler
from ingest.dimse.modality_services import modality_handlers
from ingest.dimse.move import MoveHandler
from ingest.dimse.observed import AssociationObserver
from ingest.dimse.retrieve import RetrieveSource
from ingest.dimse.server import FindRouter, StoreHandler, serve_until
from ingest.wiring import IngestClients
from schemas.catalog import CatalogInstance


async def run_gateway(settings: Settings, stop: asyncio.Event) -> None:
    clients = await IngestClients.open(settings)
    if isinstance(clients.landing, SpoolLanding):
        clients.landing.clear_temp()
    # One client of the API for every DIMSE service that reads a read model.
    catalog = InternalApi(api_base_url(settings), service_token(settings, "gateway"))

    def load(instance: CatalogInstance) -> bytes | None:
        data = load_instance(
            clients.landing,
            clients.tiers,
            instance.study_instance_uid,
            instance.series_instance_uid,
            instance.sop_instance_uid,
        )
        # Sent with its study's corrected patient attributes (the catalog says which).
        return None if data is None else coerce_patient(data, instance.patient_changes)

    # Who read what over DIMSE, published in batches (infra/audit_recorder.py).
    recorder = AuditRecorder(clients.publisher, "gateway", settings.audit.flush_seconds)
    flushing = asyncio.create_task(recorder.run(stop))
    leases = RetrieveLeases(settings, asyncio.get_running_loop())
    lease = leases.held if settings.tiers.retrieve_lock_wait_seconds > 0 else None
    retrieve = RetrieveSource(catalog=catalog, load=load, lease=lease)
    find = FindRouter()
    for sop_class in FIND_SOP_CLASSES:
        handler = FindHandler(catalog, settings.dicom.find_max_matches, recorder)
        find.add(str(sop_class), handler)
    publisher = clients.publisher
    modality = modality_handlers(
        settings,
        asyncio.get_running_loop(),
        find,
        catalog,
        lambda: dict(publisher.acknowledged),
        recorder,
    )
    # TLS: the TLS port's context, and how we connect to destinations that speak TLS (with
    # our own certificate, trusting our CA file).
    credentials = server_credentials(settings)
    tls = tls_client = None
    if credentials is not None:
        tls = server_context(credentials, settings.dicom.tls_client_certificates)
        tls_client = client_context(
            credentials.ca_file, credentials.cert_file, credentials.key_file
        )
    # The DIMSE door: every association is checked against the node registry.
    directory = NodeDirectory(catalog.nodes)
    policy = AccessPolicy(settings.dicom.ae_title, directory, settings.dicom.unknown_aes, recorder)
    destinations = Destinations(directory, settings.dicom.remote_ae)
    # /metrics and /associations on the loopback (infra/metrics.py); AE labels bounded to
    # the registered nodes.
    observer = AssociationObserver(lambda title: directory.by_ae_title(title) is not None)
    metrics_server = serve_metrics_from(
        settings.metrics.host, settings.metrics.gateway_port, settings.dicom.processes
    )
    handlers = [
        *observer.handlers(),
        # A user identity in the A-ASSOCIATE-RQ is verified by the API and narrows the grant.
        (evt.EVT_USER_ID, UserIdentityCheck(catalog.identify, recorder)),
        (evt.EVT_C_ECHO, guarded("echo", lambda event: 0x0000)),
        (evt.EVT_C_STORE, guarded("store", StoreHandler(clients.acceptor))),
        (evt.EVT_C_MOVE, guarded_move(MoveHandler(destinations, retrieve, recorder, tls_client))),
        (evt.EVT_C_GET, guarded_get(GetHandler(retrieve, recorder))),
        *modality,
    ]
    try:
        await serve_until(stop, settings.dicom, handlers, policy, find, tls)
    finally:
        if metrics_server is not None:
            metrics_server.shutdown()
        catalog.close()
        stop.set()
        await flushing  # its last flush, before the publisher closes
        await clients.close()
