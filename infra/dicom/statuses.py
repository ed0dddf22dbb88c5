"""DIMSE status codes we answer with, named (PS3.4 B.2.3, PS3.7 C)."""

from __future__ import annotations

from pydicom.dataset import Dataset

SUCCESS = 0x0000
# Out of resources: the bytes or the event could not be made durable in time.
OUT_OF_RESOURCES = 0xA700
# Cannot understand: the dataset could not be decoded.
CANNOT_UNDERSTAND = 0xC210
# Cannot understand: a required identifying attribute is missing or not a valid UID.
MISSING_IDENTIFIER = 0xC211
# Same SOP Instance UID as a stored instance, different bytes, duplicate policy "reject".
DUPLICATE_SOP_INSTANCE = 0x0111
# STOW-RS study-level POST with an instance of another study.
STUDY_UID_MISMATCH = 0xA900

# Query/Retrieve (PS3.4 C.4.1.1.4)
PENDING = 0xFF00
CANCELLED = 0xFE00
IDENTIFIER_MISMATCH = 0xA900  # Identifier does not match SOP Class
# Out of resources: the read model could not say what matches.
UNABLE_TO_CALCULATE_MATCHES = 0xA701
UNABLE_TO_PROCESS = 0xC001


def status_dataset(code: int, reason: str = "") -> Dataset:
    """A status with a human-readable ErrorComment (limited to 64 characters, LO)."""
    status = Dataset()
    status.Status = code
    if reason:
        status.ErrorComment = reason[:64]
    return status


# DIMSE-N (PS3.7 C.4, PS3.4 F.7 / J.3)
INVALID_ATTRIBUTE_VALUE = 0x0106
# MPPS: N-SET on a step that is COMPLETED or DISCONTINUED (with an ErrorComment saying so);
# also any request we could not carry out.
PROCESSING_FAILURE = 0x0110
NO_SUCH_OBJECT_INSTANCE = 0x0112
MISSING_ATTRIBUTE = 0x0120
NO_SUCH_ACTION_TYPE = 0x0123

# Storage Commitment FailureReason values (PS3.3 C.14.1.1)
FAILURE_PROCESSING = 0x0110
FAILURE_NO_SUCH_OBJECT_INSTANCE = 0x0112
FAILURE_CLASS_INSTANCE_CONFLICT = 0x0119
