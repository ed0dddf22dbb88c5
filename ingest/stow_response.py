"""The few DICOM JSON (PS3.18 F.2) elements the STOW-RS response needs."""

from __future__ import annotations

from typing import Any

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
