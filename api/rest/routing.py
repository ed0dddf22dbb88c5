"""Routing rules (admin only): CRUD at /api/routing/rules, each change an event, each saved
content a new version. Delivery (workflows/route_delivery, to come) reads the current ones."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, HTTPException, Path

from api.deps import CallerDep, Services, ServicesDep, nodes_of, publish_visible, require
from infra.auth.permissions import Permission
from infra.readmodels.routing import RoutingRules
from schemas.events import RoutingRuleDeleted, RoutingRuleSaved
from schemas.routing import RULE_NAME_PATTERN, RoutingRule, RoutingRuleBody

router = APIRouter(
    prefix="/api/routing/rules", tags=["routing"], dependencies=[require(Permission.ADMIN)]
)

RuleName = Annotated[str, Path(pattern=RULE_NAME_PATTERN)]


def rules_of(services: Services) -> RoutingRules:
    if services.routing is None:
        raise HTTPException(503, "the routing read model is not available in this API process")
    return services.routing


def _check_destinations(services: Services, body: RoutingRuleBody) -> None:
    """Every destination is a registered node that can take what the rule sends: 422 with
    the reason otherwise, so a rule never waits on a node that cannot exist."""
    registry = nodes_of(services)
    for name in body.destinations:
        node = registry.node(name)
        if node is None:
            raise HTTPException(422, f"destination {name} is not a registered node")
        if body.via == "stow" and not node.dicomweb_url:
            raise HTTPException(422, f"destination {name} has no dicomweb_url for STOW-RS")


@router.get("", response_model=list[RoutingRule])
async def list_rules(services: ServicesDep) -> list[RoutingRule]:
    return rules_of(services).rules()


@router.get("/{name}", response_model=RoutingRule)
async def get_rule(name: RuleName, services: ServicesDep) -> RoutingRule:
    rule = rules_of(services).rule(name)
    if rule is None:
        raise HTTPException(404, f"no routing rule {name}")
    return rule


@router.get("/{name}/versions", response_model=list[RoutingRule])
async def rule_versions(name: RuleName, services: ServicesDep) -> list[RoutingRule]:
    """Every version the rule had, newest first (also after it was deleted)."""
    versions = await asyncio.to_thread(rules_of(services).versions, name)
    if not versions:
        raise HTTPException(404, f"no routing rule {name} was ever saved")
    return versions


@router.put("/{name}", response_model=RoutingRule)
async def save_rule(
    name: RuleName, body: RoutingRuleBody, services: ServicesDep, caller: CallerDep
) -> RoutingRule:
    """Make the rule or replace it; the same content again is not a new version."""
    rules = rules_of(services)
    _check_destinations(services, body)
    current = rules.rule(name)
    if current is not None and RoutingRuleBody(**current.model_dump()) == body:
        return current
    version = await asyncio.to_thread(rules.last_version, name) + 1
    rule = RoutingRule(
        name=name,
        version=version,
        saved_at=datetime.now(UTC),
        saved_by=caller.name,
        **body.model_dump(),
    )
    await publish_visible(services, RoutingRuleSaved(rule=rule, actor=caller.name))
    return rule


@router.delete("/{name}", status_code=204)
async def delete_rule(name: RuleName, services: ServicesDep, caller: CallerDep) -> None:
    rule = rules_of(services).rule(name)
    if rule is None:
        raise HTTPException(404, f"no routing rule {name}")
    event = RoutingRuleDeleted(name=name, rule_version=rule.version, actor=caller.name)
    await publish_visible(services, event)
