"""Both landing areas of a node, for the processes that drain or watch them (worker,
dispatcher). Its own module so the dispatcher does not import the worker's activities
(pynetdicom, highdicom, ...: ~90 MB of RSS it never uses)."""

from __future__ import annotations

from infra.settings import Settings
from infra.storage.archive import make_minio
from infra.storage.landing import Landing, S3Landing, SpoolLanding


def landings(settings: Settings) -> dict[str, Landing]:
    """Both landing areas: events say where each instance was landed, whatever the setting now."""
    client = make_minio(settings.s3)
    return {
        "spool": SpoolLanding(settings.spool_dir),
        "s3": S3Landing(client, settings.s3.landing_bucket),
    }
