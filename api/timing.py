"""Request latency by route template for /metrics (pacs_http_request_seconds): QIDO, WADO,
metadata, the internal C-FIND route and every other one.

A plain ASGI wrapper, not Starlette's BaseHTTPMiddleware: that one runs each request
through an extra task and stream, which a sub-millisecond QIDO would notice."""

from __future__ import annotations

import time
from typing import Any

from infra.metrics import HTTP_SECONDS

# A path no route matched (a 404 from the router) is one label, not one per URL asked.
UNMATCHED = "unmatched"


def status_class(status: int) -> str:
    return f"{status // 100}xx"


class RequestTiming:
    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def send_and_note(message: dict[str, Any]) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, send_and_note)
        finally:
            route = scope.get("route")
            template = getattr(route, "path", None) or UNMATCHED
            HTTP_SECONDS.labels(template, scope.get("method", ""), status_class(status)).observe(
                time.perf_counter() - started
            )
