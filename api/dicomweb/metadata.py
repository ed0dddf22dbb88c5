"""WADO-RS metadata (PS3.18 10.4.1.1.2): the DICOM JSON stored at ingest, never re-read.

Each instance's header JSON was computed by the gateway when it arrived and kept in the
catalog; a series' answer is one range read of those rows, whatever its size.
"""

from __future__ import annotations

import asyncio

from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import Response

from api.deps import CatalogDep, audited, in_scope, require
from api.dicomweb.paths import UidPath, dicomweb_root
from api.dicomweb.stored import check_uids
from infra.auth.permissions import Permission
from infra.readmodels.catalog.search import CatalogReader, metadata_document

router = APIRouter(
    prefix="/dicom-web",
    tags=["dicomweb"],
    dependencies=[require(Permission.STUDIES_READ), audited("wado-metadata"), in_scope()],
)


async def _metadata(
    request: Request, catalog: CatalogReader, study: str, series: str | None, sop: str | None
) -> Response:
    check_uids(study=study, series=series, instance=sop)
    items = await asyncio.to_thread(catalog.metadata, study, series, sop)
    if not items:
        what = sop or series or study
        raise HTTPException(404, f"nothing stored for {what}")
    body = metadata_document(items, dicomweb_root(request) + "/")
    return Response(body, media_type="application/dicom+json")


@router.get("/studies/{study_instance_uid}/metadata")
async def retrieve_study_metadata(
    study_instance_uid: UidPath, request: Request, catalog: CatalogDep
) -> Response:
    """Metadata of every instance of the study."""
    return await _metadata(request, catalog, study_instance_uid, None, None)


@router.get("/studies/{study_instance_uid}/series/{series_instance_uid}/metadata")
async def retrieve_series_metadata(
    study_instance_uid: UidPath,
    series_instance_uid: UidPath,
    request: Request,
    catalog: CatalogDep,
) -> Response:
    """Metadata of every instance of the series."""
    return await _metadata(request, catalog, study_instance_uid, series_instance_uid, None)


@router.get(
    "/studies/{study_instance_uid}/series/{series_instance_uid}/instances/{sop_instance_uid}/metadata"
)
async def retrieve_instance_metadata(
    study_instance_uid: UidPath,
    series_instance_uid: UidPath,
    sop_instance_uid: UidPath,
    request: Request,
    catalog: CatalogDep,
) -> Response:
    """Metadata of one instance."""
    return await _metadata(
        request, catalog, study_instance_uid, series_instance_uid, sop_instance_uid
    )
