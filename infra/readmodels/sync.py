"""The sync relations read model (infra/readmodels/rules.py, kind "sync")."""

from __future__ import annotations

from infra.clickhouse import ClickHouse
from infra.readmodels.rules import VersionedRules
from schemas.events import SyncRelationDeleted, SyncRelationSaved
from schemas.sync import SyncRelation

SyncRelations = VersionedRules[SyncRelation]


def open_sync_relations(clickhouse: ClickHouse) -> SyncRelations:
    return VersionedRules(clickhouse, "sync", SyncRelation, SyncRelationSaved, SyncRelationDeleted)
