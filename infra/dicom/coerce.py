"""Attribute coercion on retrieve: a stored object sent with its study's corrected patient
attributes (infra/readmodels/catalog/corrections.py). The stored bytes stay as received;
the copy sent is re-encoded as it was stored (same transfer syntax, pixel data untouched)."""

from __future__ import annotations

import io

import pydicom


def coerce_patient(part10: bytes, changes: dict[str, str]) -> bytes:
    """`part10` with `changes` (DICOM keyword -> value) applied; itself when none."""
    if not changes:
        return part10
    dataset = pydicom.dcmread(io.BytesIO(part10))
    for keyword, value in changes.items():
        setattr(dataset, keyword, value)
    out = io.BytesIO()
    dataset.save_as(out, enforce_file_format=False)
    return out.getvalue()
