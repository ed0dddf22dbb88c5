"""The dispatcher's router: each received instance that a routing rule matches is handed
to the delivery workflow of each of the rule's destinations (signal-with-start), before the
dispatcher commits its place in the log, so a crash re-routes rather than forgets.

Rules come from the API (GET /api/internal/routing-rules), re-read at most every second
(apps/rules_cache.py): a rule saved now routes what is received from about a second later
on, not what arrived before.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable

from temporalio.client import Client

from apps.rules_cache import RulesCache
from infra.internal_api import InternalApi
from infra.settings import Settings
from schemas.events import InstanceReceived
from schemas.routing import (
    RouteDeliveryInput,
    RouteItem,
    RouteItems,
    RoutingRule,
    StudiesStable,
    Via,
)
from workflows.route_delivery import RouteDeliveryWorkflow, workflow_id

log = logging.getLogger(__name__)

# Items per signal: a poll of 5,000 records would make one signal of ~2 MB, Temporal's
# payload limit; 500 items are ~200 KB.
SIGNAL_ITEMS = 500
# DICOM JSON tags of the matchable attributes the event does not carry as fields.
TAGS = {
    "BodyPartExamined": "00180015",
    "StudyDescription": "00081030",
    "InstitutionName": "00080080",
}


def attributes(event: InstanceReceived) -> dict[str, str]:
    """What rules match on, from the received event alone (no re-read of the object)."""
    found = {
        "Modality": event.modality,
        "SOPClassUID": event.instance.sop_class_uid,
        "CallingAE": event.calling_ae,
    }
    metadata = event.metadata or {}
    for keyword, tag in TAGS.items():
        values = (metadata.get(tag) or {}).get("Value") or []
        found[keyword] = str(values[0]) if values else ""
    return found


Route = tuple[str, Via, bool]  # destination, via, held until the study is stable


def route_items(
    rules: list[RoutingRule], events: Iterable[InstanceReceived], timezone: str = "UTC"
) -> dict[Route, list[RouteItem]]:
    """Per (destination, via, held), in log order, what the rules send. Items of `on:
    study` rules are matched as they arrive, as any, and held by their destination's
    workflow until the study is stabilized. A rule's window without a time zone is read in
    the platform's (`timezone`)."""
    out: dict[Route, list[RouteItem]] = {}
    live = [r for r in rules if r.enabled]
    windows = {
        r.name: r.window.model_copy(update={"timezone": r.window.timezone or timezone})
        for r in live
        if r.window is not None
    }
    for event in events:
        if not live:
            break
        found = attributes(event)
        for rule in live:
            if not rule.matches(found):
                continue
            window = windows.get(rule.name)
            item = RouteItem(
                instance=event.instance,
                landing_mode=event.landing_mode,
                landing_key=event.landing_key,
                rule=rule.name,
                rule_version=rule.version,
                received_at=event.occurred_at,
                due_at=window.next_opening(event.occurred_at) if window else None,
                max_age_seconds=rule.max_age_seconds,
                window=window,
                deidentify=rule.deidentify_options if rule.deidentify else None,
            )
            for destination in rule.destinations:
                route = (destination, rule.via, rule.on == "study")
                out.setdefault(route, []).append(item)
    return out


def study_routes(rules: list[RoutingRule]) -> set[tuple[str, Via]]:
    """Where `on: study` rules send: the workflows that may hold a study's items."""
    return {(d, r.via) for r in rules if r.enabled and r.on == "study" for d in r.destinations}


class Router:
    def __init__(self, client: Client, api: InternalApi, settings: Settings) -> None:
        self.client = client
        self.api = api
        self.settings = settings
        self._rules = RulesCache(api.routing_rules, "routing")

    async def rules(self) -> list[RoutingRule]:
        return await self._rules.current()

    async def route(self, events: list[InstanceReceived]) -> int:
        """Hand every match to its destination's workflow; how many items were handed."""
        if not events:
            return 0
        routed = route_items(await self.rules(), events, self.settings.federation.timezone)
        await asyncio.gather(
            *(self._signal(d, v, items, held) for (d, v, held), items in routed.items())
        )
        return sum(len(items) for items in routed.values())

    async def release(self, studies: list[str]) -> None:
        """The studies are stable: every study-rule destination sends what it holds of them."""
        routes = study_routes(await self.rules())
        await asyncio.gather(*(self._release(d, v, studies) for d, v in routes))

    async def _start(self, destination: str, via: Via, signal: str, arg: object) -> None:
        await self.client.start_workflow(
            RouteDeliveryWorkflow.run,
            RouteDeliveryInput(destination=destination, via=via),
            id=workflow_id(destination, via),
            task_queue=self.settings.temporal.ingest_task_queue,
            start_signal=signal,
            start_signal_args=[arg],
        )

    async def _release(self, destination: str, via: Via, studies: list[str]) -> None:
        await self._start(destination, via, "release", StudiesStable(study_instance_uids=studies))

    async def _signal(self, destination: str, via: Via, items: list[RouteItem], held: bool) -> None:
        # One after the other: the destination's queue keeps the log's order.
        for at in range(0, len(items), SIGNAL_ITEMS):
            chunk = RouteItems(items=items[at : at + SIGNAL_ITEMS], held=held)
            await self._start(destination, via, "enqueue", chunk)
