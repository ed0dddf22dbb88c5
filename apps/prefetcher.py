"""The dispatcher's prefetcher: each procedure scheduled on the worklist
(`pacs.worklist.item-scheduled`) that a prefetch rule matches starts a PrefetchWorkflow for
its patient's priors, before the dispatcher commits its place in the log (so a crash asks
again rather than forgets; the workflow id makes the repeat a no-op).

One prefetch per patient and accession: of several matching rules the first by name
applies. The deadline is the procedure's scheduled start, in the platform's time zone.
"""

from __future__ import annotations

import logging
from datetime import datetime, time
from zoneinfo import ZoneInfo

from temporalio.client import Client
from temporalio.exceptions import WorkflowAlreadyStartedError

from apps.rules_cache import RulesCache
from infra.internal_api import InternalApi
from infra.settings import Settings
from schemas.events import WorklistItemScheduled
from schemas.prefetch import PrefetchInput, PrefetchRule, prefetch_workflow_id
from schemas.worklist import WorklistItem
from workflows.prefetch import PrefetchWorkflow, search_attributes

log = logging.getLogger(__name__)


def trigger_attributes(item: WorklistItem) -> dict[str, str]:
    step = item.scheduled_step
    return {
        "Modality": step.modality,
        "ScheduledStationAETitle": step.station_ae_title,
        "RequestedProcedureDescription": item.requested_procedure_description,
    }


def prefetch_input(
    rule: PrefetchRule, event: WorklistItemScheduled, timezone: str
) -> PrefetchInput:
    item = event.item
    step = item.scheduled_step
    deadline = datetime.combine(step.start_date, step.start_time or time(0), ZoneInfo(timezone))
    choice = rule.model_dump(include={"sources", "via", "modalities", "body_parts",
                                      "lookback_days", "max_studies"})  # fmt: skip
    return PrefetchInput(
        patient_id=item.patient_id,
        accession_number=item.accession_number,
        study_instance_uid=event.study_instance_uid,
        deadline=deadline,
        rule=rule.name,
        requested_by=f"prefetch rule {rule.name}",
        **choice,
    )


def matching_rule(rules: list[PrefetchRule], item: WorklistItem) -> PrefetchRule | None:
    found = trigger_attributes(item)
    live = sorted((r for r in rules if r.enabled and r.matches(found)), key=lambda r: r.name)
    return live[0] if live else None


class Prefetcher:
    def __init__(self, client: Client, api: InternalApi, settings: Settings) -> None:
        self.client = client
        self.settings = settings
        self._rules = RulesCache(api.prefetch_rules, "prefetch")

    async def on_scheduled(self, events: list[WorklistItemScheduled]) -> int:
        """Start the prefetches these scheduled procedures ask for; how many started."""
        if not events:
            return 0
        rules = await self._rules.current()
        started = 0
        for event in events:
            rule = matching_rule(rules, event.item)
            if rule is not None:
                started += await self._start(prefetch_input(rule, event, self._zone()))
        return started

    def _zone(self) -> str:
        return self.settings.federation.timezone

    async def _start(self, job: PrefetchInput) -> int:
        try:
            await self.client.start_workflow(
                PrefetchWorkflow.run,
                job,
                id=prefetch_workflow_id(job.patient_id, job.accession_number),
                task_queue=self.settings.temporal.ingest_task_queue,
                search_attributes=search_attributes(job),
            )
        except WorkflowAlreadyStartedError:
            return 0  # the same procedure again (or asked on demand meanwhile): running
        return 1
