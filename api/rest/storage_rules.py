"""Storage rules (admin only): CRUD at /api/storage/rules (api/rest/rule_crud.py), each
change an event, each saved content a new version. The `tier-migration` schedule (or
`POST /api/storage/apply-rules`) applies the enabled ones (workflows/storage_rules.py)."""

from __future__ import annotations

from api.rest.rule_crud import RuleKind, build_router, no_check
from schemas.events import StorageRuleDeleted, StorageRuleSaved
from schemas.nodes import NODE_NAME_PATTERN
from schemas.tiers import StorageRule, StorageRuleBody

STORAGE = RuleKind(
    "storage",
    StorageRuleBody,
    StorageRule,
    lambda services: services.storage_rules,
    lambda rule, actor: StorageRuleSaved(rule=rule, actor=actor),
    lambda name, version, actor: StorageRuleDeleted(name=name, rule_version=version, actor=actor),
    no_check,
)
router = build_router("/api/storage/rules", "storage", STORAGE, NODE_NAME_PATTERN)
