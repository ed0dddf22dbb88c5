"""The FastAPI application: one router tree, clients opened in the lifespan."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware

from api import viewer
from api.deps import Services
from api.dicomweb import frames, metadata, qido, rendered, stow, wado, wado_uri
from api.rest import admin, audit, changes, health, internal, mpps, worklist
from infra.clickhouse import ClickHouse
from infra.readmodels.audit import AuditProjection, AuditTrail
from infra.readmodels.catalog.projection import CatalogProjection
from infra.readmodels.catalog.resident import ResidentCatalog
from infra.readmodels.catalog.search import CatalogReader
from infra.readmodels.runner import ProjectorRunner
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
            landing=clients.landing,
            publisher=clients.publisher,
            acceptor=clients.acceptor,
        )
        stop = asyncio.Event()
        tasks: list[asyncio.Task[None]] = []
        if run_projectors:
            clickhouse = services.clickhouse = ClickHouse(cfg.clickhouse_dsn)
            max_rows = cfg.clickhouse.resident_max_rows
            resident = ResidentCatalog(clickhouse, max_rows) if max_rows > 0 else None
            services.catalog = CatalogReader(clickhouse, resident)
            services.worklist = WorklistProjection(clickhouse)
            services.audit = AuditTrail(clickhouse)
            services.projector = ProjectorRunner(
                clickhouse,
                cfg.kafka,
                # Catalog first: a change listed in /api/changes is already queryable.
                [
                    CatalogProjection(
                        clickhouse, resident, MetadataStore(clients.minio, cfg.s3.metadata_bucket)
                    ),
                    services.worklist,
                    AuditProjection(clickhouse),
                ],
                cfg.kafka.projection_poll_interval_seconds,
            )
            tasks.append(asyncio.create_task(services.projector.run(stop)))
        app.state.services = services
        try:
            yield
        finally:
            stop.set()
            await asyncio.gather(*tasks, return_exceptions=True)
            await clients.close()
            if services.clickhouse is not None:
                services.clickhouse.close()

    app = FastAPI(
        title="PACS",
        summary="DICOMweb and admin API of an event-sourced PACS",
        lifespan=lifespan,
    )
    for module in (
        health,
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
    ):
        app.include_router(module.router)
    cfg = settings or get_settings()
    add_cors(app, cfg)
    viewer_dir = cfg.viewer_dir
    bundle = viewer.ViewerBundle.load(viewer_dir)
    app.include_router(viewer.build_router(bundle, viewer_dir))
    # Last, so an API route always wins: the root-level files OHIF fetches its code from.
    app.include_router(viewer.build_root_router(bundle))
    return app


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
