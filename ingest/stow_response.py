"""The STOW-RS response (PS3.18 10.5.3): a DICOM JSON dataset of what was stored and what not.

Only the few elements the response needs are written by hand; the rest of the platform's
DICOM JSON comes from the stored headers.
"""

from __future__ import annotations

from typing import Any

from infra.dicom.statuses import OUT_OF_RESOURCES
from ingest.accept import Outcome

JsonDataset = dict[str, dict[str, Any]]


def element(vr: str, *values: Any) -> dict[str, Any]:
    return {"vr": vr, "Value": list(values)} if values else {"vr": vr}


RETRIEVE_URL = "00081190"
FAILED_SOP_SEQUENCE = "00081198"
REFERENCED_SOP_SEQUENCE = "00081199"
REFERENCED_SOP_CLASS_UID = "00081150"
REFERENCED_SOP_INSTANCE_UID = "00081155"
FAILURE_REASON = "00081197"
# Not part of the STOW response IOD, but a human-readable reason is what an integrator needs.
ERROR_COMMENT = "00000902"


def stow_status(outcomes: list[Outcome]) -> int:
    """200 all stored, 202 some stored, 409 none stored, 503 none stored for lack of resources."""
    stored = sum(o.ok for o in outcomes)
    if stored == len(outcomes):
        return 200
    if stored:
        return 202
    if all(o.status == OUT_OF_RESOURCES for o in outcomes):
        return 503
    return 409


def _instance_url(root: str, outcome: Outcome) -> str:
    h = outcome.header
    assert h is not None
    return (
        f"{root}/studies/{h.study_instance_uid}/series/{h.series_instance_uid}"
        f"/instances/{h.sop_instance_uid}"
    )


def _referenced(root: str, outcome: Outcome) -> JsonDataset:
    h = outcome.header
    assert h is not None
    return {
        REFERENCED_SOP_CLASS_UID: element("UI", h.sop_class_uid),
        REFERENCED_SOP_INSTANCE_UID: element("UI", h.sop_instance_uid),
        RETRIEVE_URL: element("UR", _instance_url(root, outcome)),
    }


def failed_item(outcome: Outcome) -> JsonDataset:
    """One FailedSOPSequence item: the reason code, which instance (if known) and why."""
    item: JsonDataset = {FAILURE_REASON: element("US", outcome.status)}
    if outcome.header is not None:
        item[REFERENCED_SOP_CLASS_UID] = element("UI", outcome.header.sop_class_uid)
        item[REFERENCED_SOP_INSTANCE_UID] = element("UI", outcome.header.sop_instance_uid)
    if outcome.reason:
        item[ERROR_COMMENT] = element("LO", outcome.reason)
    return item


def response_dataset(
    root: str, outcomes: list[Outcome], extra_failures: list[Outcome]
) -> JsonDataset:
    """The response for these outcomes, retrieve URLs under the DICOMweb `root`."""
    response: JsonDataset = {}
    stored = [o for o in outcomes if o.ok]
    failed = [failed_item(o) for o in [*outcomes, *extra_failures] if not o.ok]
    studies = {o.header.study_instance_uid for o in stored if o.header}
    if len(studies) == 1:
        response[RETRIEVE_URL] = element("UR", f"{root}/studies/{studies.pop()}")
    if stored:
        response[REFERENCED_SOP_SEQUENCE] = element("SQ", *(_referenced(root, o) for o in stored))
    if failed:
        response[FAILED_SOP_SEQUENCE] = element("SQ", *failed)
    return response
