"""What the API's routes share: the clients opened in the app's lifespan, and the guards.

Routes take their clients through the dependencies here, never from `app.state`, so there
is one place that decides what a route may reach: a read model this process does not hold
is one answer everywhere (503, the same reason), and the caller's identity joins it here.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field
from typing import Annotated, NoReturn, TypeVar

from fastapi import Depends, HTTPException, Request
from minio import Minio
from temporalio.client import Client as TemporalClient

from infra.clickhouse import ClickHouse
from infra.eventlog import EventPublisher
from infra.readmodels.audit import AuditTrail
from infra.readmodels.catalog.search import CatalogReader
from infra.readmodels.runner import ProjectorRunner
from infra.readmodels.worklist import WorklistProjection
from infra.settings import Settings
from infra.storage.archive import ArchiveStore
from infra.storage.landing import Landing
from infra.temporal_client import connect_temporal
from ingest.accept import Acceptor

log = logging.getLogger(__name__)

T = TypeVar("T")


@dataclass
class Services:
    settings: Settings
    minio: Minio
    archive: ArchiveStore
    landing: Landing
    publisher: EventPublisher
    acceptor: Acceptor
    # The read models and their runner: only in the process that owns ClickHouse.
    clickhouse: ClickHouse | None = None
    projector: ProjectorRunner | None = None
    catalog: CatalogReader | None = None
    worklist: WorklistProjection | None = None
    audit: AuditTrail | None = None
    _temporal: TemporalClient | None = field(default=None, repr=False)
    _temporal_lock: asyncio.Lock = field(default_factory=asyncio.Lock, repr=False)

    async def temporal(self) -> TemporalClient:
        """Connect on first use so the API starts even while Temporal is still coming up;
        one attempt, so a request (or the readiness probe) fails fast instead of waiting."""
        async with self._temporal_lock:
            if self._temporal is None:
                self._temporal = await connect_temporal(self.settings.temporal, attempts=1)
            return self._temporal


async def get_services(request: Request) -> Services:
    # async: FastAPI runs a plain-def dependency in its thread pool, a hop on every request.
    services: Services = request.app.state.services
    return services


ServicesDep = Annotated[Services, Depends(get_services)]


def read_model_unavailable(name: str) -> NoReturn:
    """The one answer for a read model this process does not hold (or not yet): a client
    may retry, or ask the process that owns it."""
    raise HTTPException(503, f"the {name} read model is not available in this API process")


def _held(model: T | None, name: str) -> T:
    if model is None:
        read_model_unavailable(name)
    return model


def catalog_of(services: Services) -> CatalogReader:
    return _held(services.catalog, "catalog")


def worklist_of(services: Services) -> WorklistProjection:
    return _held(services.worklist, "worklist")


def audit_of(services: Services) -> AuditTrail:
    return _held(services.audit, "audit (events)")


def projector_of(services: Services) -> ProjectorRunner:
    return _held(services.projector, "projector")


async def _catalog(services: ServicesDep) -> CatalogReader:
    return catalog_of(services)


async def _worklist(services: ServicesDep) -> WorklistProjection:
    return worklist_of(services)


async def _audit(services: ServicesDep) -> AuditTrail:
    return audit_of(services)


async def _projector(services: ServicesDep) -> ProjectorRunner:
    return projector_of(services)


CatalogDep = Annotated[CatalogReader, Depends(_catalog)]
WorklistDep = Annotated[WorklistProjection, Depends(_worklist)]
AuditDep = Annotated[AuditTrail, Depends(_audit)]
ProjectorDep = Annotated[ProjectorRunner, Depends(_projector)]
