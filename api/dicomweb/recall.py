"""Recall on read (`PACS_TIERS__RECALL_ON_READ`): a WADO read served from warm or cold
starts moving the study back to hot. The read itself is served at once, from where it is;
the move is a StudyMigrationWorkflow like any other (`migrate:<study>`, one at a time), and
this process asks for a study at most once a minute, however many of its objects are read."""

from __future__ import annotations

import asyncio
import logging
import time

from temporalio.common import WorkflowIDConflictPolicy
from temporalio.exceptions import WorkflowAlreadyStartedError

from api.deps import Services
from schemas.tiers import MigrationInput
from workflows.deletion import study_keys
from workflows.migration import StudyMigrationWorkflow, migration_workflow_id

log = logging.getLogger(__name__)

ASK_AGAIN_AFTER_SECONDS = 60.0
_asked: dict[str, float] = {}
_tasks: set[asyncio.Task[None]] = set()


async def _recall(services: Services, study: str) -> None:
    try:
        client = await services.temporal()
        await client.start_workflow(
            StudyMigrationWorkflow.run,
            MigrationInput(study_instance_uid=study, to_tier="hot", reason="recall", actor="wado"),
            id=migration_workflow_id(study),
            task_queue=services.settings.temporal.ingest_task_queue,
            search_attributes=study_keys(study, ""),
            id_conflict_policy=WorkflowIDConflictPolicy.FAIL,
        )
        log.info("recalling study %s to hot (read from a lower tier)", study)
    except WorkflowAlreadyStartedError:
        pass  # a move of it is under way already
    except Exception as exc:  # noqa: BLE001 - a recall is a hint; the read was served
        log.warning("recall of %s not started: %r", study, exc)


def read_from(services: Services, study: str, tier: str) -> None:
    """Note that an object of `study` was read from `tier`."""
    if tier in ("hot", "landing") or not services.settings.tiers.recall_on_read:
        return
    now = time.monotonic()
    if now - _asked.get(study, float("-inf")) < ASK_AGAIN_AFTER_SECONDS:
        return
    _asked[study] = now
    task = asyncio.create_task(_recall(services, study))
    _tasks.add(task)
    task.add_done_callback(_tasks.discard)
