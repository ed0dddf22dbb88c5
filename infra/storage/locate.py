"""Where a stored instance's bytes are: the landing area first, then the archive's tiers.

One lookup shared by every retrieve path (WADO-RS in the API, C-MOVE/C-GET in the gateway).
"""

from __future__ import annotations

from infra.storage.archive import archive_key
from infra.storage.landing import Landing
from infra.storage.tiers import Tiers


def locate_instance(
    landing: Landing, tiers: Tiers, study: str, series: str, sop: str
) -> tuple[str, bytes] | None:
    """Where the newest stored version is ("landing", or its tier) and its bytes: the
    landing area holds anything newer than the archive's tiers."""
    landed = landing.versions(study, series, sop)
    if landed:
        data = landing.get(landed[-1])
        if data is not None:
            return "landing", data
    # Archived while we looked: the archive has it now.
    return tiers.fetch(archive_key(study, series, sop))


def load_instance(
    landing: Landing, tiers: Tiers, study: str, series: str, sop: str
) -> bytes | None:
    """The newest stored version's bytes."""
    found = locate_instance(landing, tiers, study, series, sop)
    return found[1] if found else None
