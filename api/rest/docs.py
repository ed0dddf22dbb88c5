"""The OpenAPI document and its Swagger UI, for logged-in callers only.

A browser without a session is sent to the login page and back; the document itself needs
any valid credential (it lists every route, which is not for the public).
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response

from api.deps import CallerDep, ServicesDep
from api.identity import Unauthenticated

router = APIRouter(include_in_schema=False)


@router.get("/openapi.json")
async def openapi(request: Request, caller: CallerDep) -> JSONResponse:
    document: dict[str, Any] = request.app.openapi()
    return JSONResponse(document)


@router.get("/docs")
async def swagger_ui(request: Request, services: ServicesDep) -> Response:
    try:
        caller = await services.authenticator.resolve(request)
    except Unauthenticated:
        caller = None
    if caller is None:
        return RedirectResponse("/login?next=/docs", status_code=303)
    page: HTMLResponse = get_swagger_ui_html(openapi_url="/openapi.json", title="PACS API")
    return page
