"""Where a stored instance's bytes are: the landing area first, then the archive.

One lookup shared by every retrieve path (WADO-RS in the API, C-MOVE/C-GET in the gateway).
"""

from __future__ import annotations

from infra.storage.archive import ArchiveStore, archive_key
from infra.storage.landing import Landing


def load_instance(
    landing: Landing, archive: ArchiveStore, study: str, series: str, sop: str
) -> bytes | None:
    """The newest stored version: the landing area holds anything newer than the archive."""
    landed = landing.versions(study, series, sop)
    if landed:
        data = landing.get(landed[-1])
        if data is not None:
            return data
    # Archived while we looked: the archive has it now.
    return archive.get(archive_key(study, series, sop))
