"""Clients the API shares across requests, opened in the app's lifespan."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field
from typing import Annotated

from fastapi import Depends, Request
from minio import Minio
from temporalio.client import Client as TemporalClient
from temporalio.contrib.pydantic import pydantic_data_converter

from infra.clickhouse import ClickHouse
from infra.eventlog import EventPublisher
from infra.readmodels.catalog.search import CatalogReader
from infra.readmodels.runner import ProjectorRunner
from infra.readmodels.worklist import WorklistProjection
from infra.settings import Settings
from infra.storage.archive import ArchiveStore
from infra.storage.landing import Landing
from ingest.accept import Acceptor

log = logging.getLogger(__name__)


@dataclass
class Services:
    settings: Settings
    minio: Minio
    archive: ArchiveStore
    landing: Landing
    publisher: EventPublisher
    acceptor: Acceptor
    clickhouse: ClickHouse | None = None
    projector: ProjectorRunner | None = None
    # The read side of the catalog; only in the process that owns ClickHouse.
    catalog: CatalogReader | None = None
    worklist: WorklistProjection | None = None
    _temporal: TemporalClient | None = field(default=None, repr=False)
    _temporal_lock: asyncio.Lock = field(default_factory=asyncio.Lock, repr=False)

    async def temporal(self) -> TemporalClient:
        """Connect on first use so the API starts even while Temporal is still coming up."""
        async with self._temporal_lock:
            if self._temporal is None:
                # Workflow inputs, results and queries are pydantic models.
                self._temporal = await TemporalClient.connect(
                    self.settings.temporal.address,
                    namespace=self.settings.temporal.namespace,
                    data_converter=pydantic_data_converter,
                )
            return self._temporal


async def get_services(request: Request) -> Services:
    # async: FastAPI runs a plain-def dependency in its thread pool, a hop on every request.
    services: Services = request.app.state.services
    return services


ServicesDep = Annotated[Services, Depends(get_services)]
