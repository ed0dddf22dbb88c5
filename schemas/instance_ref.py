"""The identity of one stored instance and of its bytes, shared by events and routing."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class InstanceRef(BaseModel):
    """The identity of one SOP instance and of the bytes that were received for it."""

    model_config = ConfigDict(frozen=True)

    study_instance_uid: str
    series_instance_uid: str
    sop_instance_uid: str
    sop_class_uid: str
    sha256: str
    size: int
