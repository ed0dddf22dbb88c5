"""The FastAPI application: one router tree, clients opened in the lifespan."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import Depends, FastAPI
from fastapi.middleware.cors import CORSMiddleware

from api import viewer
from api.bootstrap import ensure_admin
from api.deps import Services, authenticated
from api.dicomweb import frames, metadata, qido, rendered, stow, wado, wado_uri
from api.identity import Authenticator
from api.rest import (
    admin,
    audit,
    auth,
    certificates,
    changes,
    deidentify,
    deletion,
    deliveries,
    docs,
    fixity,
    health,
    internal,
    jobs,
    mpps,
    nodes,
    observability,
    patients,
    prefetch,
    prefetch_rules,
    retention,
    retention_rules,
    routing,
    schedules,
    storage_rules,
    storage_tiers,
    studies,
    study_storage,
    sync,
    users,
    worklist,
)
from api.timing import RequestTiming
from infra.audit_recorder import AuditRecorder
from infra.auth.oidc import OidcVerifier
from infra.auth.tokens import TokenIssuer, token_key
from infra.clickhouse import ClickHouse
from infra.readmodels.audit import AuditProjection, AuditTrail
from infra.readmodels.catalog.projection import CatalogProjection
from infra.readmodels.catalog.resident import ResidentCatalog
from infra.readmodels.catalog.scope import VisibleStudies
from infra.readmodels.catalog.search import CatalogReader
from infra.readmodels.nodes import NodeRegistry
from infra.readmodels.prefetch import open_prefetch_rules
from infra.readmodels.retention_rules import open_retention_rules
from infra.readmodels.routing import open_routing_rules
from infra.readmodels.runner import ProjectorRunner
from infra.readmodels.security import SecurityProjection
from infra.readmodels.storage_rules import open_storage_rules
from infra.readmodels.sync import open_sync_relations
from infra.readmodels.tiers import StorageTiers, TierUsageCollector
from infra.readmodels.worklist import WorklistProjection
from infra.settings import Settings, get_settings
from infra.storage.metadata import MetadataStore
from ingest.wiring import IngestClients

log = logging.getLogger(__name__)


def create_app(settings: Settings | None = None, run_projectors: bool = True) -> FastAPI:
    """Build the app; with `run_projectors` this process owns ClickHouse (chDB: one process)."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        cfg = settings or get_settings()
        clients = await IngestClients.open(cfg)
        services = Services(
            settings=cfg,
            minio=clients.minio,
            archive=clients.archive,
            tiers=clients.tiers,
            landing=clients.landing,
            publisher=clients.publisher,
            acceptor=clients.acceptor,
            authenticator=Authenticator(
                TokenIssuer(token_key(cfg), cfg.auth.token_ttl_seconds),
                None,
                OidcVerifier(cfg.auth.oidc) if OidcVerifier.configured(cfg.auth.oidc) else None,
            ),
        )
        stop = asyncio.Event()
        tasks: list[asyncio.Task[None]] = []
        services.recorder = AuditRecorder(clients.publisher, "api", cfg.audit.flush_seconds)
        recorder = asyncio.create_task(services.recorder.run(stop))
        if run_projectors:
            clickhouse = services.clickhouse = ClickHouse(cfg.clickhouse_dsn, cfg.clickhouse.tls)
            max_rows = cfg.clickhouse.resident_max_rows
            resident = ResidentCatalog(clickhouse, max_rows) if max_rows > 0 else None
            services.catalog = CatalogReader(clickhouse, resident)
            services.visible = VisibleStudies(clickhouse)
            services.worklist = WorklistProjection(clickhouse)
            services.audit = AuditTrail(clickhouse)
            services.security = services.authenticator.security = SecurityProjection(clickhouse)
            services.nodes = NodeRegistry(clickhouse)
            services.routing = open_routing_rules(clickhouse)
            services.prefetch = open_prefetch_rules(clickhouse)
            services.sync = open_sync_relations(clickhouse)
            services.tier_model = StorageTiers(clickhouse)
            services.storage_rules = open_storage_rules(clickhouse)
            services.retention_rules = open_retention_rules(clickhouse)
            TierUsageCollector.register(services.tier_model)
            services.projector = ProjectorRunner(
                clickhouse,
                cfg.kafka,
                # Catalog first: a change listed in /api/changes is already queryable.
                [
                    CatalogProjection(
                        clickhouse,
                        resident,
                        MetadataStore(clients.minio, cfg.s3.metadata_bucket),
                        services.pending_deletions,
                        services.corrections,
                    ),
                    services.worklist,
                    services.security,
                    services.nodes,
                    services.routing,
                    services.prefetch,
                    services.sync,
                    services.tier_model,
                    services.storage_rules,
                    services.retention_rules,
                    AuditProjection(clickhouse),
                ],
                cfg.kafka.projection_poll_interval_seconds,
            )
            tasks.append(asyncio.create_task(services.projector.run(stop)))
            tasks.append(asyncio.create_task(_bootstrap(services)))
        else:
            services.security_ready.set()
        app.state.services = services
        try:
            yield
        finally:
            stop.set()
            await asyncio.gather(*tasks, return_exceptions=True)
            await asyncio.gather(recorder, return_exceptions=True)  # its last flush first
            await clients.close()
            if services.clickhouse is not None:
                services.clickhouse.close()

    app = FastAPI(
        title="PACS",
        summary="DICOMweb and admin API of an event-sourced PACS",
        lifespan=lifespan,
        # Served below behind a login: the API's own description is not public.
        docs_url=None,
        redoc_url=None,
        openapi_url=None,
    )
    # Public: liveness/readiness, the token endpoint and the login page.
    for module in (health, auth):
        app.include_router(module.router)
    app.include_router(docs.router)
    # The one door: every other route resolves its caller first (401 without one), then
    # checks the permission it declares (403).
    door = [Depends(authenticated)]
    for module in (
        stow,
        qido,
        metadata,
        wado,
        frames,
        rendered,
        wado_uri,
        admin,
        audit,
        changes,
        internal,
        worklist,
        mpps,
        users,
        nodes,
        routing,
        deliveries,
        prefetch_rules,
        prefetch,
        sync,
        jobs,
        deidentify,
        studies,
        study_storage,
        patients,
        deletion,
        fixity,
        storage_rules,
        storage_tiers,
        retention_rules,
        retention,
        schedules,
        certificates,
        observability,
    ):
        app.include_router(module.router, dependencies=door)
    cfg = settings or get_settings()
    add_cors(app, cfg)
    app.add_middleware(RequestTiming)
    viewer_dir = cfg.viewer_dir
    bundle = viewer.ViewerBundle.load(viewer_dir)
    app.include_router(viewer.build_router(bundle, viewer_dir))
    # Last, so an API route always wins: the root-level files OHIF fetches its code from.
    app.include_router(viewer.build_root_router(bundle))
    return app


async def _bootstrap(services: Services) -> None:
    try:
        await ensure_admin(services)
    except Exception:
        log.exception("checking the user admin failed")
        raise
    finally:
        # Ready either way: a failure is in the log, and logins say what is wrong.
        services.security_ready.set()


def add_cors(app: FastAPI, settings: Settings) -> None:
    """Let browser viewers on the configured origins call DICOMweb (and read its headers)."""
    http = settings.http
    if not http.cors_origins and not http.cors_origin_regex:
        return
    app.add_middleware(
        CORSMiddleware,
        allow_origins=http.cors_origins,
        allow_origin_regex=http.cors_origin_regex or None,
        allow_methods=["GET", "POST", "PUT", "DELETE", "OPTIONS"],
        allow_headers=["*"],
        expose_headers=["Content-Type", "Content-Location", "Content-Length", "Warning"],
        max_age=600,
    )
