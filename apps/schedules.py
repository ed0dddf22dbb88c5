"""The Temporal Schedules the platform keeps: made (or brought up to date) at worker start."""

from __future__ import annotations

from datetime import timedelta

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


def node_health_schedule(settings: Settings) -> Schedule:
    federation = settings.federation
    return Schedule(
        action=ScheduleActionStartWorkflow(
            NodeHealthWorkflow.run,
            federation.probe_timeout_seconds,
            id="node-health-round",  # the server appends the round's time
            task_queue=settings.temporal.ingest_task_queue,
            execution_timeout=timedelta(seconds=max(60.0, 10 * federation.probe_timeout_seconds)),
        ),
        spec=ScheduleSpec(
            intervals=[
                ScheduleIntervalSpec(every=timedelta(seconds=federation.health_interval_seconds))
            ]
        ),
        # A round still probing a slow node when the next is due: skip, never pile up.
        policy=SchedulePolicy(overlap=ScheduleOverlapPolicy.SKIP),
    )


async def ensure_node_health_schedule(client: Client, settings: Settings) -> None:
    """The `node-health` schedule as the settings say: made, updated, or (interval 0) gone."""
    wanted = settings.federation.health_interval_seconds > 0
    await ensure_schedule(client, SCHEDULE_ID, node_health_schedule(settings) if wanted else None)


def fixity_schedule(settings: Settings) -> Schedule:
    return Schedule(
        action=ScheduleActionStartWorkflow(
            FixityWorkflow.run,
            FixityInput(),
            id=fixity_workflow_id("", "scheduled"),  # the server appends the run's time
            task_queue=settings.temporal.ingest_task_queue,
        ),
        spec=ScheduleSpec(
            intervals=[
                ScheduleIntervalSpec(
                    every=timedelta(seconds=settings.lifecycle.fixity_interval_seconds)
                )
            ]
        ),
        # A scrub of a large archive still reading when the next is due: let it finish.
        policy=SchedulePolicy(overlap=ScheduleOverlapPolicy.SKIP),
    )


def tier_rules_schedule(settings: Settings) -> Schedule:
    tiers = settings.tiers
    return Schedule(
        action=ScheduleActionStartWorkflow(
            StorageRulesWorkflow.run,
            RulesRunInput(at_once=tiers.migrations_at_once),
            id=rules_workflow_id("scheduled"),  # the server appends the run's time
            task_queue=settings.temporal.ingest_task_queue,
        ),
        spec=ScheduleSpec(
            intervals=[ScheduleIntervalSpec(every=timedelta(seconds=tiers.rules_interval_seconds))]
        ),
        # Moves still running when the next run is due: let them finish first.
        policy=SchedulePolicy(overlap=ScheduleOverlapPolicy.SKIP),
    )


async def ensure_tier_rules_schedule(client: Client, settings: Settings) -> None:
    """The `tier-migration` schedule as the settings say: made, updated, or (0) gone."""
    wanted = settings.tiers.rules_interval_seconds > 0
    schedule = tier_rules_schedule(settings) if wanted else None
    await ensure_schedule(client, TIER_SCHEDULE, schedule)


def retention_schedule(settings: Settings) -> Schedule:
    lifecycle = settings.lifecycle
    return Schedule(
        action=ScheduleActionStartWorkflow(
            RetentionWorkflow.run,
            RetentionRunInput(grace_seconds=lifecycle.delete_grace_seconds),
            id=retention_workflow_id("scheduled"),  # the server appends the run's time
            task_queue=settings.temporal.ingest_task_queue,
        ),
        spec=ScheduleSpec(
            intervals=[
                ScheduleIntervalSpec(every=timedelta(seconds=lifecycle.retention_interval_seconds))
            ]
        ),
        policy=SchedulePolicy(overlap=ScheduleOverlapPolicy.SKIP),
    )


async def ensure_retention_schedule(client: Client, settings: Settings) -> None:
    """The `retention` schedule as the settings say: made, updated, or (0) gone."""
    wanted = settings.lifecycle.retention_interval_seconds > 0
    schedule = retention_schedule(settings) if wanted else None
    await ensure_schedule(client, RETENTION_SCHEDULE, schedule)


async def ensure_fixity_schedule(client: Client, settings: Settings) -> None:
    """The `fixity` schedule as the settings say: made, updated, or (interval 0) gone."""
    wanted = settings.lifecycle.fixity_interval_seconds > 0
    await ensure_schedule(client, FIXITY_SCHEDULE, fixity_schedule(settings) if wanted else None)
