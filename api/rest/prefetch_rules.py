"""Prefetch rules (admin only): CRUD at /api/prefetch/rules (api/rest/rule_crud.py), each
change an event, each saved content a new version. The dispatcher's prefetcher applies the
current ones to each scheduled procedure (apps/prefetcher.py)."""

from __future__ import annotations

from fastapi import HTTPException

from api.deps import Services, nodes_of
from api.rest.rule_crud import RuleKind, build_router
from schemas.events import PrefetchRuleDeleted, PrefetchRuleSaved
from schemas.prefetch import RULE_NAME_PATTERN, PrefetchRule, PrefetchRuleBody, PriorChoice


def check_sources(services: Services, choice: PriorChoice) -> None:
    """Every source is a registered node that can answer the way asked: 422 otherwise."""
    registry = nodes_of(services)
    for name in choice.sources:
        node = registry.node(name)
        if node is None:
            raise HTTPException(422, f"source {name} is not a registered node")
        if choice.via == "wado" and not node.dicomweb_url:
            raise HTTPException(422, f"source {name} has no dicomweb_url for QIDO/WADO-RS")


PREFETCH = RuleKind(
    "prefetch",
    PrefetchRuleBody,
    PrefetchRule,
    lambda services: services.prefetch,
    lambda rule, actor: PrefetchRuleSaved(rule=rule, actor=actor),
    lambda name, version, actor: PrefetchRuleDeleted(name=name, rule_version=version, actor=actor),
    check_sources,
)
router = build_router("/api/prefetch/rules", "prefetch", PREFETCH, RULE_NAME_PATTERN)
