"""Where an instance's bytes are: landing first (newest), then the archive.

Works without any read model: both keys derive from the UIDs. The lookup itself lives in
`ingest.stored_instances`, shared with the gateway's C-MOVE/C-GET.
"""

from __future__ import annotations

from api.services import Services
from ingest import stored_instances


def load_instance(services: Services, study: str, series: str, sop: str) -> bytes | None:
    """The newest stored version: the landing area holds anything newer than the archive."""
    return stored_instances.load_instance(services.landing, services.archive, study, series, sop)
