"""Retention rules (admin only): CRUD at /api/retention/rules (api/rest/rule_crud.py), each
change an event, each saved content a new version. The `retention` schedule (or
`POST /api/retention/apply`) applies the enabled ones (workflows/retention.py)."""

from __future__ import annotations

from api.rest.rule_crud import RuleKind, build_router, no_check
from schemas.events import RetentionRuleDeleted, RetentionRuleSaved
from schemas.nodes import NODE_NAME_PATTERN
from schemas.retention import RetentionRule, RetentionRuleBody

RETENTION = RuleKind(
    "retention",
    RetentionRuleBody,
    RetentionRule,
    lambda services: services.retention_rules,
    lambda rule, actor: RetentionRuleSaved(rule=rule, actor=actor),
    lambda name, version, actor: RetentionRuleDeleted(name=name, rule_version=version, actor=actor),
    no_check,
)
router = build_router("/api/retention/rules", "retention", RETENTION, NODE_NAME_PATTERN)
