"""The modality workflow services a gateway offers besides storage: MWL, MPPS, commitment."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from pynetdicom import evt
from pynetdicom.sop_class import ModalityWorklistInformationFind  # type: ignore[attr-defined]

from infra.audit_recorder import AuditRecorder
from infra.internal_api import InternalApi
from infra.settings import Settings
from ingest.dimse.access import guarded
from ingest.dimse.commitment import CommitmentHandler
from ingest.dimse.mpps import MppsHandlers
from ingest.dimse.server import FindRouter
from ingest.dimse.temporal_bridge import TemporalBridge
from ingest.dimse.worklist import WorklistFindHandler


def modality_handlers(
    settings: Settings,
    loop: asyncio.AbstractEventLoop,
    find: FindRouter,
    api: InternalApi,
    log_positions: Callable[[], dict[int, int]] = dict,
    recorder: AuditRecorder | None = None,
) -> list[Any]:
    """Handler bindings for the gateway."""
    bridge = TemporalBridge(settings.temporal, loop)
    find.add(str(ModalityWorklistInformationFind), WorklistFindHandler(api, recorder), "worklist")
    queue = settings.temporal.ingest_task_queue
    mpps = MppsHandlers(bridge, queue, settings.dicom.mpps_verify_timeout_seconds)
    commitment = CommitmentHandler(
        bridge, queue, settings.dicom.commitment_timeout_seconds, log_positions
    )
    handlers: list[Any] = [
        (evt.EVT_C_FIND, find),
        (evt.EVT_N_CREATE, guarded("mpps", mpps.n_create)),
        (evt.EVT_N_SET, guarded("mpps", mpps.n_set)),
        (evt.EVT_N_ACTION, guarded("commitment", commitment)),
    ]
    return handlers
