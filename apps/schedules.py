"""The Temporal Schedules the platform keeps: made (or brought up to date) at worker start.

Each runs one workflow every N seconds from settings (0: the schedule is removed), and a
run still going when the next is due is not doubled (overlap SKIP): a probe round stuck on
a slow node, a scrub of a large archive, moves or deletions still running."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from temporalio.client import (
    Client,
    Schedule,
    ScheduleActionStartWorkflow,
    ScheduleIntervalSpec,
    ScheduleOverlapPolicy,
    SchedulePolicy,
    ScheduleSpec,
)

from infra.schedules import ensure_schedule
from infra.settings import Settings
from schemas.lifecycle import FixityInput
from schemas.retention import RetentionRunInput
from schemas.tiers import RulesRunInput
from workflows.fixity import SCHEDULE_ID as FIXITY_SCHEDULE
from workflows.fixity import FixityWorkflow, fixity_workflow_id
from workflows.node_health import SCHEDULE_ID, NodeHealthWorkflow
from workflows.retention import SCHEDULE_ID as RETENTION_SCHEDULE
from workflows.retention import RetentionWorkflow, retention_workflow_id
from workflows.storage_rules import SCHEDULE_ID as TIER_SCHEDULE
from workflows.storage_rules import StorageRulesWorkflow, rules_workflow_id


async def _ensure_every(
    client: Client,
    settings: Settings,
    schedule_id: str,
    seconds: float,
    run: Any,
    arg: Any,
    workflow_id: str,  # the server appends each run's time
    execution_timeout: timedelta | None = None,
) -> None:
    """The schedule as the settings say: made, updated, or (interval 0) gone."""
    schedule = Schedule(
        action=ScheduleActionStartWorkflow(
            run,
            arg,
            id=workflow_id,
            task_queue=settings.temporal.ingest_task_queue,
            execution_timeout=execution_timeout,
        ),
        spec=ScheduleSpec(intervals=[ScheduleIntervalSpec(every=timedelta(seconds=seconds))]),
        policy=SchedulePolicy(overlap=ScheduleOverlapPolicy.SKIP),
    )
    await ensure_schedule(client, schedule_id, schedule if seconds > 0 else None)


async def ensure_node_health_schedule(client: Client, settings: Settings) -> None:
    federation = settings.federation
    await _ensure_every(
        client, settings, SCHEDULE_ID, federation.health_interval_seconds,
        NodeHealthWorkflow.run, federation.probe_timeout_seconds, "node-health-round",
        execution_timeout=timedelta(seconds=max(60.0, 10 * federation.probe_timeout_seconds)),
    )  # fmt: skip


async def ensure_fixity_schedule(client: Client, settings: Settings) -> None:
    await _ensure_every(
        client, settings, FIXITY_SCHEDULE, settings.lifecycle.fixity_interval_seconds,
        FixityWorkflow.run, FixityInput(), fixity_workflow_id("", "scheduled"),
    )  # fmt: skip


async def ensure_tier_rules_schedule(client: Client, settings: Settings) -> None:
    tiers = settings.tiers
    await _ensure_every(
        client, settings, TIER_SCHEDULE, tiers.rules_interval_seconds,
        StorageRulesWorkflow.run, RulesRunInput(at_once=tiers.migrations_at_once),
        rules_workflow_id("scheduled"),
    )  # fmt: skip


async def ensure_retention_schedule(client: Client, settings: Settings) -> None:
    lifecycle = settings.lifecycle
    await _ensure_every(
        client, settings, RETENTION_SCHEDULE, lifecycle.retention_interval_seconds,
        RetentionWorkflow.run, RetentionRunInput(grace_seconds=lifecycle.delete_grace_seconds),
        retention_workflow_id("scheduled"),
    )  # fmt: skip
