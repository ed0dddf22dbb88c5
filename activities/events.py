"""Announcing workflow outcomes on the event log."""

from __future__ import annotations

from temporalio import activity

from infra.eventlog import EventPublisher
from schemas.workflows import PublishEvents


class EventActivities:
    """Built once per worker; events carry workflow-made ids, so a retry repeats the same fact."""

    def __init__(self, publisher: EventPublisher) -> None:
        self.publisher = publisher

    @activity.defn
    async def publish_events(self, request: PublishEvents) -> None:
        """Append the events and return once the broker acknowledged them."""
        await self.publisher.publish_many(request.events)
