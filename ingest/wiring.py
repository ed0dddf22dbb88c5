"""Builds the accept path from settings; shared by the DIMSE gateway and the HTTP API."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass

from minio import Minio

from infra.eventlog import EventPublisher
from infra.settings import LandingMode, Settings
from infra.storage.archive import ArchiveStore, make_minio
from infra.storage.deletions import Deletions
from infra.storage.landing import Landing, S3Landing, SpoolLanding
from infra.storage.metadata import MetadataStore
from infra.storage.tier_stores import make_tiers
from infra.storage.tiers import Tiers
from ingest.accept import Acceptor

log = logging.getLogger(__name__)


def make_landing(settings: Settings, client: Minio) -> Landing:
    if settings.ingest.landing is LandingMode.S3:
        return S3Landing(client, settings.s3.landing_bucket)
    return SpoolLanding(settings.spool_dir)


async def start_with_retry(publisher: EventPublisher, attempts: int = 30) -> None:
    """The broker may still be starting (or restarting after a crash): keep trying a while."""
    for attempt in range(1, attempts + 1):
        try:
            await publisher.start()
            return
        except Exception as exc:
            if attempt == attempts:
                raise
            log.warning("broker not reachable yet (%r); retry %d/%d", exc, attempt, attempts)
            await asyncio.sleep(1)


@dataclass
class IngestClients:
    minio: Minio
    archive: ArchiveStore
    tiers: Tiers
    landing: Landing
    publisher: EventPublisher
    acceptor: Acceptor

    @classmethod
    async def open(cls, settings: Settings) -> IngestClients:
        # Every association thread may ask the store at once (landing, duplicate checks).
        client = make_minio(settings.s3, connections=max(10, settings.dicom.max_associations))
        archive = ArchiveStore(client, settings.s3.archive_bucket)
        tiers = make_tiers(settings, archive)
        landing = make_landing(settings, client)
        publisher = EventPublisher(settings.kafka)
        await start_with_retry(publisher)
        acceptor = Acceptor(
            landing,
            tiers,
            publisher,
            settings.ingest,
            asyncio.get_running_loop(),
            MetadataStore(client, settings.s3.metadata_bucket),
            Deletions(archive),
        )
        return cls(client, archive, tiers, landing, publisher, acceptor)

    async def close(self) -> None:
        await self.publisher.stop()
