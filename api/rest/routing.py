"""Routing rules (admin only): CRUD at /api/routing/rules (api/rest/rule_crud.py), each
change an event, each saved content a new version. The dispatcher's router reads the
current ones (apps/router.py)."""

from __future__ import annotations

from fastapi import HTTPException

from api.deps import Services, nodes_of
from api.rest.rule_crud import RuleKind, build_router
from schemas.events import RoutingRuleDeleted, RoutingRuleSaved
from schemas.routing import RULE_NAME_PATTERN, RoutingRule, RoutingRuleBody


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


ROUTING = RuleKind(
    "routing",
    RoutingRuleBody,
    RoutingRule,
    lambda services: services.routing,
    lambda rule, actor: RoutingRuleSaved(rule=rule, actor=actor),
    lambda name, version, actor: RoutingRuleDeleted(name=name, rule_version=version, actor=actor),
    _check_destinations,
)
router = build_router("/api/routing/rules", "routing", ROUTING, RULE_NAME_PATTERN)
