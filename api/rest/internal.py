"""Catalog access for our own DIMSE gateways, which cannot open the embedded ClickHouse.

Not a public API: bound to the same loopback address as everything else, shapes may change.
"""

from __future__ import annotations

import asyncio
from typing import Annotated

from fastapi import APIRouter, HTTPException, Query
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from api.deps import CatalogDep, Services, ServicesDep, nodes_of, read_model_unavailable, require
from api.identity import Caller, Unauthenticated, user_caller
from api.rest.retention import retention_matches
from api.rest.storage_tiers import rule_matches
from infra.auth.permissions import Permission
from infra.auth.scope import scope_from_models, scope_models
from infra.readmodels.catalog.attributes import Level
from infra.readmodels.catalog.scope import Visible
from infra.readmodels.catalog.search import MAX_RESULTS, Search
from infra.readmodels.matching import QueryError
from schemas.catalog import CatalogInstance, InstanceQuery
from schemas.nodes import HealthStatus, Node
from schemas.prefetch import PrefetchRule
from schemas.retention import RetentionMatch
from schemas.routing import RoutingRule
from schemas.security import DimseIdentity, StudyRuleModel
from schemas.tiers import RuleMatch

router = APIRouter(
    prefix="/api/internal",
    tags=["internal"],
    include_in_schema=False,
    dependencies=[require(Permission.INTERNAL)],
)

# How long a caught-up listing waits for the projector before it says "not now".
CATCH_UP_TIMEOUT_SECONDS = 5.0


class FindRequest(BaseModel):
    """A C-FIND identifier as match keys (keyword → DICOM string value) and return keys."""

    level: str
    filters: dict[str, str] = {}
    return_keys: list[str] = []
    limit: int = Field(default=MAX_RESULTS, ge=0, le=MAX_RESULTS)
    offset: int = Field(default=0, ge=0)
    # On behalf of a scoped DIMSE user: only the studies these rules admit match.
    scope: list[StudyRuleModel] | None = None


class IdentifyRequest(BaseModel):
    """A User Identity Negotiation item (PS3.7 D.3.3.7.1): its type and fields."""

    kind: int = Field(ge=1, le=5)
    primary: str = Field(max_length=65_535)
    secondary: str = Field(default="", max_length=65_535)


@router.post("/instances", response_model=list[CatalogInstance])
async def list_instances(
    query: InstanceQuery, catalog: CatalogDep, services: ServicesDep
) -> list[CatalogInstance]:
    """Stored instances for a retrieve (C-MOVE / C-GET), or for a commitment check."""
    if query.caught_up and (
        services.projector is None
        or not await services.projector.wait_caught_up(
            CATCH_UP_TIMEOUT_SECONDS, query.log_positions
        )
    ):
        raise HTTPException(503, "the catalog has not caught up with the event log yet")
    try:
        found = await asyncio.to_thread(catalog.instances, query)
    except QueryError as exc:
        raise HTTPException(400, str(exc)) from exc
    visible = await _visible(services, query.scope)
    if visible is not None:
        found = [item for item in found if item.study_instance_uid in visible.studies]
    changes = {
        s: c for s in {i.study_instance_uid for i in found} if (c := services.corrections.of(s))
    }
    return [
        i.model_copy(update={"patient_changes": changes[i.study_instance_uid]})
        if i.study_instance_uid in changes
        else i
        for i in found
    ]


async def _visible(services: Services, scope: list[StudyRuleModel] | None) -> Visible | None:
    if scope is None:
        return None
    visible = services.visible
    if visible is None:
        read_model_unavailable("catalog")
    return await asyncio.to_thread(visible.of, scope_from_models(scope) or ())


@router.post("/find")
async def find(request: FindRequest, catalog: CatalogDep, services: ServicesDep) -> JSONResponse:
    """Matches as DICOM JSON datasets, one per entity at the requested level."""
    try:
        level = Level.parse(request.level)
        search = Search(
            level,
            request.filters,
            request.return_keys,
            request.limit,
            request.offset,
            defaults=False,
            within=await _visible(services, request.scope),
        )
        result = await catalog.search_soon(search)
    except (QueryError, ValueError) as exc:
        raise HTTPException(400, str(exc)) from exc
    # Straight to JSON: C-FIND latency is what this endpoint exists for.
    return JSONResponse(result.rows)


@router.post("/identify", response_model=DimseIdentity | None)
async def identify(body: IdentifyRequest, services: ServicesDep) -> DimseIdentity | None:
    """Verify a DIMSE user identity: type 2 (user name and password) against the local
    users, type 5 (a JWT — or an API key — as primary field) like a bearer credential. Type 1
    (a user name without proof), 3 (Kerberos) and 4 (SAML) are not accepted. null when it
    does not verify (the gateway then rejects the association)."""
    authenticator = services.authenticator
    caller: Caller | None = None
    if body.kind == 2:
        user = await authenticator.password_user(body.primary, body.secondary)
        caller = None if user is None else user_caller(user, "dimse", "")
    elif body.kind == 5:
        try:
            caller = await authenticator.bearer(body.primary, "")
        except Unauthenticated:
            caller = None
    if caller is None:
        return None
    return DimseIdentity(
        name=caller.name,
        permissions=sorted(p.value for p in caller.permissions),
        scope=scope_models(caller.scope),
    )


@router.get("/nodes", response_model=list[Node])
async def list_nodes(services: ServicesDep) -> list[Node]:
    """The node registry, for the gateway's association checks."""
    return nodes_of(services).nodes()


@router.get("/routing-rules", response_model=list[RoutingRule])
async def routing_rules(services: ServicesDep) -> list[RoutingRule]:
    """The current routing rules, for the dispatcher's router."""
    if services.routing is None:
        read_model_unavailable("routing")
    return services.routing.rules()


@router.get("/prefetch-rules", response_model=list[PrefetchRule])
async def prefetch_rules(services: ServicesDep) -> list[PrefetchRule]:
    """The current prefetch rules, for the dispatcher's prefetcher."""
    if services.prefetch is None:
        read_model_unavailable("prefetch")
    return services.prefetch.rules()


@router.get("/storage-candidates", response_model=list[RuleMatch])
async def storage_candidates(
    services: ServicesDep, limit: Annotated[int, Query(ge=1, le=100_000)] = 1000
) -> list[RuleMatch]:
    """What the enabled storage rules move now, for the rules workflow."""
    return await asyncio.to_thread(rule_matches, services, limit)


@router.get("/retention-candidates", response_model=list[RetentionMatch])
async def retention_candidates(
    services: ServicesDep, limit: Annotated[int, Query(ge=1, le=100_000)] = 1000
) -> list[RetentionMatch]:
    """What the enabled retention rules delete now, for the retention workflow."""
    return await asyncio.to_thread(retention_matches, services, limit)


@router.get("/node-health", response_model=dict[str, HealthStatus])
async def node_statuses(services: ServicesDep) -> dict[str, HealthStatus]:
    """Each checked node's last status, for the health workflow to tell changes apart."""
    return nodes_of(services).statuses()
