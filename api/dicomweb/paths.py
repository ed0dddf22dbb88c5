"""The shapes of DICOMweb URLs: resource paths every route module shares, and the root."""

from __future__ import annotations

from typing import Annotated

from fastapi import Path, Request

PREFIX = "/dicom-web"
INSTANCE_PATH = "/studies/{study}/series/{series}/instances/{instance}"
# A UID is at most 64 characters (PS3.5 9.1); longer path segments are refused up front.
UidPath = Annotated[str, Path(max_length=64)]


def dicomweb_root(request: Request) -> str:
    """The absolute DICOMweb root this request came through (for RetrieveURL and BulkData)."""
    return f"{str(request.base_url).rstrip('/')}{PREFIX}"
