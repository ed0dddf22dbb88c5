"""What the API's routes share: the clients opened in the app's lifespan, and the guards.

Routes take their clients through the dependencies here, never from `app.state`, so there
is one place that decides what a route may reach: a read model this process does not hold
is one answer everywhere (503, the same reason); the caller's identity is resolved once per
request (`authenticated`, on every router but the public ones, see api/app.py), and a route
names the permission it needs with `require` — the one check, against one role table
(infra/auth/permissions.py).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Annotated, Any, NoReturn, TypeVar

from fastapi import Depends, HTTPException, Request
from minio import Minio
from temporalio.client import Client as TemporalClient

from api.identity import Authenticator, Caller, Unauthenticated
from infra.audit_recorder import AuditRecorder, access_entry
from infra.auth.permissions import Permission
from infra.clickhouse import ClickHouse
from infra.eventlog import EventPublisher
from infra.readmodels.audit import AuditTrail
from infra.readmodels.catalog.corrections import PatientCorrections
from infra.readmodels.catalog.deletions import PendingDeletions
from infra.readmodels.catalog.scope import Visible, VisibleStudies
from infra.readmodels.catalog.search import CatalogReader
from infra.readmodels.nodes import NodeRegistry
from infra.readmodels.prefetch import PrefetchRules
from infra.readmodels.retention_rules import RetentionRules
from infra.readmodels.routing import RoutingRules
from infra.readmodels.runner import ProjectorRunner
from infra.readmodels.security import SecurityProjection
from infra.readmodels.storage_rules import StorageRules
from infra.readmodels.sync import SyncRelations
from infra.readmodels.tiers import StorageTiers
from infra.readmodels.worklist import WorklistProjection
from infra.settings import Settings
from infra.storage.archive import ArchiveStore
from infra.storage.landing import Landing
from infra.storage.tiers import Tiers
from infra.temporal_client import connect_temporal
from ingest.accept import Acceptor
from schemas.audit import Outcome
from schemas.events import Event

log = logging.getLogger(__name__)

T = TypeVar("T")


@dataclass
class Services:
    settings: Settings
    minio: Minio
    archive: ArchiveStore
    tiers: Tiers
    landing: Landing
    publisher: EventPublisher
    acceptor: Acceptor
    authenticator: Authenticator
    # The read models and their runner: only in the process that owns ClickHouse.
    clickhouse: ClickHouse | None = None
    projector: ProjectorRunner | None = None
    catalog: CatalogReader | None = None
    # Deletions whose bytes are not purged yet: retrieves by UID ask it first.
    pending_deletions: PendingDeletions = field(default_factory=PendingDeletions)
    # Corrected patient attributes per study: retrieves coerce them into what they send.
    corrections: PatientCorrections = field(default_factory=PatientCorrections)
    # Which studies a scoped caller may read (infra/auth/scope.py).
    visible: VisibleStudies | None = None
    worklist: WorklistProjection | None = None
    audit: AuditTrail | None = None
    security: SecurityProjection | None = None
    nodes: NodeRegistry | None = None
    routing: RoutingRules | None = None
    prefetch: PrefetchRules | None = None
    sync: SyncRelations | None = None
    tier_model: StorageTiers | None = None  # each instance's tier; usage per tier
    storage_rules: StorageRules | None = None
    retention_rules: RetentionRules | None = None
    # PHI accesses and security decisions, published in batches (infra/audit_recorder.py).
    recorder: AuditRecorder | None = None
    # Set once the user admin is checked (api/bootstrap.py); until then not ready.
    security_ready: asyncio.Event = field(default_factory=asyncio.Event)
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


def nodes_of(services: Services) -> NodeRegistry:
    return _held(services.nodes, "node registry")


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


def audit(
    request: Request,
    action: str,
    outcome: Outcome,
    detail: str = "",
    caller: Caller | None = None,
    **subject: str,
) -> None:
    """Record one access or decision for the audit trail (never waits for the log)."""
    services: Services = request.app.state.services
    if services.recorder is None:
        return
    who = caller or getattr(request.state, "caller", None)
    services.recorder.record(
        access_entry(
            action,
            outcome,
            who.name if who else "",
            who.via if who else "",
            request.client.host if request.client else "",
            detail,
            **subject,
        )
    )


async def authenticated(request: Request, services: ServicesDep) -> Caller:
    """The caller, or 401: no credential, or one that is not valid (the reason is given)."""
    try:
        caller = await services.authenticator.resolve(request)
    except Unauthenticated as exc:
        audit(request, "unauthenticated", "denied", f"{request.method} {request.url.path}: {exc}")
        raise HTTPException(
            401, str(exc), headers={"WWW-Authenticate": 'Bearer error="invalid_token"'}
        ) from exc
    if caller is None:
        raise HTTPException(
            401,
            "authentication required: a bearer token (POST /api/auth/token), an API key "
            "(Authorization: Bearer or X-API-Key) or a session (/login)",
            headers={"WWW-Authenticate": "Bearer"},
        )
    request.state.caller = caller
    return caller


CallerDep = Annotated[Caller, Depends(authenticated)]


def require(permission: Permission) -> Any:
    """A route dependency: 403 unless the caller's roles grant `permission`."""

    async def check(request: Request, caller: CallerDep) -> Caller:
        if not caller.may(permission):
            what = f"{request.method} {request.url.path} needs {permission.value}"
            audit(request, "denied", "denied", what, caller)
            raise HTTPException(403, f"{caller.name} lacks the permission {permission.value}")
        return caller

    return Depends(check)


# How long a write through the API waits for its event to reach the read models.
VISIBLE_WITHIN_SECONDS = 5.0


async def publish_visible(services: Services, event: Event, *more: Event) -> None:
    """Append `event` (and `more`; 503 when the log does not acknowledge them), then wait
    until every read model has applied them, so the caller's next read sees the change."""
    try:
        await asyncio.wait_for(
            services.publisher.publish_many([event, *more]),
            services.settings.ingest.accept_timeout_seconds,
        )
    except Exception as exc:
        log.warning("event %s not acknowledged: %r", event.type, exc)
        raise HTTPException(503, f"the event log did not acknowledge the change: {exc!r}") from exc
    if services.projector is not None and not await services.projector.wait_caught_up(
        VISIBLE_WITHIN_SECONDS, dict(services.publisher.acknowledged)
    ):
        log.warning("event %s not yet visible in the read models", event.type)


# Path parameter names of the DICOMweb routes → the audit entry's UID fields.
_UID_PARAMS = {
    "study": "study_instance_uid",
    "study_instance_uid": "study_instance_uid",
    "series": "series_instance_uid",
    "series_instance_uid": "series_instance_uid",
    "instance": "sop_instance_uid",
    "sop_instance_uid": "sop_instance_uid",
}


_WADO_URI_PARAMS = {
    "studyUID": "study_instance_uid",
    "seriesUID": "series_instance_uid",
    "objectUID": "sop_instance_uid",
}


def audited(action: str) -> Any:
    """A router dependency: every request is one audit entry — its UIDs from the path (or,
    for a search, one entry per study it returned: `request.state.audit_subjects`), with
    the outcome (success, or failure with the status and reason)."""

    async def record(request: Request, caller: CallerDep) -> AsyncIterator[None]:
        if caller.via == "service":
            # Our own processes read on someone's behalf and audit that at their edge (the
            # gateway records the MWL C-FIND it answers from /api/worklist).
            yield
            return
        try:
            yield
        except HTTPException as exc:
            detail = f"{exc.status_code}: {exc.detail}"
            audit(request, action, "failure", detail, caller, **_path_uids(request))
            raise
        subjects: list[dict[str, str]] | None = getattr(request.state, "audit_subjects", None)
        query = request.url.query
        if subjects is None:
            audit(request, action, "success", query, caller, **_path_uids(request))
        for subject in subjects or []:
            audit(request, action, "success", query, caller, **subject)

    return Depends(record)


def _path_uids(request: Request) -> dict[str, str]:
    uids = {_UID_PARAMS[k]: v for k, v in request.path_params.items() if k in _UID_PARAMS}
    for name, field_name in _WADO_URI_PARAMS.items():
        if value := request.query_params.get(name):
            uids[field_name] = value
    return uids


async def visible_to(services: Services, caller: Caller) -> Visible | None:
    """The studies `caller` may read; None: every study (no scope, the common case)."""
    if caller.scope is None:
        return None
    visible = _held(services.visible, "catalog")
    return await asyncio.to_thread(visible.of, caller.scope)


def _study_of(request: Request) -> str | None:
    for name in ("study", "study_instance_uid"):
        if value := request.path_params.get(name):
            return str(value)
    return request.query_params.get("studyUID")


def in_scope() -> Any:
    """A router dependency for routes about one study: a study outside the caller's scope
    is answered 404 like one never stored, never 403, which would confirm that it exists."""

    async def check(request: Request, services: ServicesDep, caller: CallerDep) -> None:
        study = _study_of(request)
        if study is None or caller.scope is None:
            return
        visible = await visible_to(services, caller)
        if visible is not None and study not in visible.studies:
            raise HTTPException(404, f"study {study} not found")

    return Depends(check)
