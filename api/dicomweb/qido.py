"""QIDO-RS (PS3.18 10.6): search for studies, series and instances in the catalog."""

from __future__ import annotations

from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import JSONResponse
from pydicom.datadict import tag_for_keyword

from api.deps import CatalogDep, audited, require, visible_to
from api.dicomweb.paths import UidPath, dicomweb_root
from infra.audit_recorder import subject_of
from infra.auth.permissions import Permission
from infra.dicom.header import validate_uid
from infra.readmodels.catalog.attributes import DEFAULT_RETURN, Level
from infra.readmodels.catalog.search import (
    MAX_RESULTS,
    CatalogReader,
    Search,
    attribute,
)
from infra.readmodels.matching import QueryError

router = APIRouter(
    prefix="/dicom-web",
    tags=["dicomweb"],
    dependencies=[require(Permission.STUDIES_READ), audited("qido")],
)

RESERVED = {"limit", "offset", "fuzzymatching", "includefield"}
DEFAULT_LIMIT = 1000
RETRIEVE_URL = "00081190"
# PS3.18 8.3.4.4: a response that leaves matches out says so, and they can be paged to.
MORE_RESULTS = (
    '299 pacs "The number of results exceeded the limit of {limit} per response. '
    'Additional results can be requested with offset={offset}."'
)


def parse_search(request: Request, level: Level, fixed: dict[str, str]) -> Search:
    """Query parameters → Search; 400 with the reason for anything malformed."""
    params = request.query_params
    search = Search(level=level, filters=dict(fixed), return_keys=[])
    for name, value in params.multi_items():
        if name in RESERVED:
            continue
        if "." in name:
            search.filters[name] = value  # sequence matching: reported as not supported
            continue
        if attribute(name) is None and not _is_dicom_name(name):
            raise HTTPException(400, f"unknown query parameter {name!r}")
        if name in fixed and value != fixed[name]:
            raise HTTPException(400, f"{name} in the query contradicts the path")
        search.filters[name] = value
    assert search.return_keys is not None
    for value in params.getlist("includefield"):
        for name in (part.strip() for part in value.split(",")):
            if name == "all":
                search.return_keys.extend(DEFAULT_RETURN[level])
            elif name:
                search.return_keys.append(name)
    search.fuzzy = params.get("fuzzymatching", "false").lower() == "true"
    try:
        search.limit = int(params.get("limit", DEFAULT_LIMIT))
        search.offset = int(params.get("offset", 0))
    except ValueError:
        raise HTTPException(400, "limit and offset must be integers") from None
    if search.limit < 0 or search.offset < 0:
        raise HTTPException(400, "limit and offset must not be negative")
    return search


def _is_dicom_name(name: str) -> bool:
    """A keyword from the DICOM dictionary or an 8-hex-digit tag: valid, maybe not matched."""
    if len(name) == 8:
        try:
            int(name, 16)
            return True
        except ValueError:
            pass
    return tag_for_keyword(name) is not None


async def run_search(
    request: Request, catalog: CatalogReader, level: Level, fixed: dict[str, str]
) -> JSONResponse:
    for name, value in fixed.items():
        if problem := validate_uid(name, value):
            raise HTTPException(400, problem)
    search = parse_search(request, level, fixed)
    search.within = await visible_to(request.app.state.services, request.state.caller)
    # A limit over the maximum is served up to the maximum; one more row tells whether
    # anything was left out.
    limit = min(search.limit, MAX_RESULTS)
    search.limit = limit + 1
    try:
        result = await catalog.search_soon(search)
    except QueryError as exc:
        raise HTTPException(400, str(exc)) from exc
    warnings = []
    if len(result.rows) > limit:
        del result.rows[limit:]
        warnings.append(MORE_RESULTS.format(limit=limit, offset=search.offset + limit))
    request.state.audit_subjects = [subject_of(row) for row in result.rows]
    root = dicomweb_root(request)
    for row in result.rows:
        url = _retrieve_url(root, level, row)
        if url:
            row[RETRIEVE_URL] = {"vr": "UR", "Value": [url]}
    if result.ignored:
        names = ", ".join(sorted(result.ignored))
        warnings.append(f'299 pacs "not matched at this level, ignored: {names}"')
    headers = {"Warning": ", ".join(warnings)} if warnings else {}
    return JSONResponse(result.rows, media_type="application/dicom+json", headers=headers)


def _retrieve_url(root: str, level: Level, row: dict[str, dict[str, list[str]]]) -> str | None:
    def uid(tag: str) -> str:
        return row.get(tag, {}).get("Value", [""])[0]

    study, series, sop = uid("0020000D"), uid("0020000E"), uid("00080018")
    if level is Level.STUDY and study:
        return f"{root}/studies/{study}"
    if level is Level.SERIES and study and series:
        return f"{root}/studies/{study}/series/{series}"
    if level is Level.IMAGE and study and series and sop:
        return f"{root}/studies/{study}/series/{series}/instances/{sop}"
    return None


@router.get("/studies")
async def search_for_studies(request: Request, catalog: CatalogDep) -> JSONResponse:
    """Studies matching the query (PS3.18 10.6.1, all studies)."""
    return await run_search(request, catalog, Level.STUDY, {})


@router.get("/series")
async def search_for_all_series(request: Request, catalog: CatalogDep) -> JSONResponse:
    """Series of any study matching the query."""
    return await run_search(request, catalog, Level.SERIES, {})


@router.get("/studies/{study_instance_uid}/series")
async def search_for_series(
    study_instance_uid: UidPath, request: Request, catalog: CatalogDep
) -> JSONResponse:
    """Series of one study matching the query."""
    fixed = {"StudyInstanceUID": study_instance_uid}
    return await run_search(request, catalog, Level.SERIES, fixed)


@router.get("/instances")
async def search_for_all_instances(request: Request, catalog: CatalogDep) -> JSONResponse:
    """Instances of any study matching the query."""
    return await run_search(request, catalog, Level.IMAGE, {})


@router.get("/studies/{study_instance_uid}/instances")
async def search_for_study_instances(
    study_instance_uid: UidPath, request: Request, catalog: CatalogDep
) -> JSONResponse:
    """Instances of one study matching the query."""
    fixed = {"StudyInstanceUID": study_instance_uid}
    return await run_search(request, catalog, Level.IMAGE, fixed)


@router.get("/studies/{study_instance_uid}/series/{series_instance_uid}/instances")
async def search_for_instances(
    study_instance_uid: UidPath,
    series_instance_uid: UidPath,
    request: Request,
    catalog: CatalogDep,
) -> JSONResponse:
    """Instances of one series matching the query."""
    fixed = {"StudyInstanceUID": study_instance_uid, "SeriesInstanceUID": series_instance_uid}
    return await run_search(request, catalog, Level.IMAGE, fixed)
