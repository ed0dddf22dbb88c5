"""Where an instance's bytes are: landing first (newest), then the archive.

Works without any read model: both keys derive from the UIDs.
"""

from __future__ import annotations

from api.services import Services
from infra.objectstore import archive_key


def load_instance(services: Services, study: str, series: str, sop: str) -> bytes | None:
    """The newest stored version: the landing area holds anything newer than the archive."""
    landed = services.landing.versions(study, series, sop)
    if landed:
        data = services.landing.get(landed[-1])
        if data is not None:
            return data
    # Archived while we looked: the archive has it now.
    return services.archive.get(archive_key(study, series, sop))
