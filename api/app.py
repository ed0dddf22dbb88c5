"""The FastAPI application: one router tree, clients opened in the lifespan."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from api.routes import admin, audit, health, internal, metadata, qido, stow, wado
from api.services import Services
from infra.catalog.projection import CatalogProjection
from infra.catalog.search import CatalogReader
from infra.clickhouse import ClickHouse
from infra.projections.audit import AuditProjection
from infra.projections.runner import ProjectorRunner
from infra.settings import Settings, get_settings
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
            services.catalog = CatalogReader(clickhouse)
            services.projector = ProjectorRunner(
                cfg.kafka,
                [AuditProjection(clickhouse), CatalogProjection(clickhouse)],
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
    for module in (health, stow, qido, metadata, wado, admin, audit, internal):
        app.include_router(module.router)
    return app
