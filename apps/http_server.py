"""The API process's listeners: plain HTTP on `http.host:port` (our own processes and
loopback clients), and HTTPS on `http.tls_host:tls_port` once the node has a certificate.

Both serve the one app; its lifespan (clients, read models, projectors) runs once, on the
HTTP server, and HTTPS starts only after it has started and stops before it ends.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import uvicorn

from infra.settings import Settings
from infra.tls.contexts import server_context, server_credentials

log = logging.getLogger(__name__)


class StartedServer(uvicorn.Server):
    """A uvicorn server that says when it has started (lifespan done, socket bound)."""

    def __init__(self, config: uvicorn.Config) -> None:
        super().__init__(config)
        self.started_event = asyncio.Event()

    async def startup(self, sockets: Any = None) -> None:
        await super().startup(sockets)
        self.started_event.set()


def _config(app: Any, host: str, port: int, **options: Any) -> uvicorn.Config:
    return uvicorn.Config(
        app, host=host, port=port, log_level="warning", timeout_graceful_shutdown=10, **options
    )


def https_config(app: Any, settings: Settings) -> uvicorn.Config | None:
    """The HTTPS listener's config, or None (no certificate, or PACS_HTTP__TLS_PORT=0)."""
    credentials = server_credentials(settings)
    if credentials is None or not settings.http.tls_port:
        return None
    config = _config(app, settings.http.tls_host or settings.http.host, settings.http.tls_port)
    config.lifespan = "off"
    config.load()
    # Our context (TLS 1.2+, AEAD suites; no client certificate asked: callers log in)
    # instead of the one uvicorn would build from file names.
    config.ssl = server_context(credentials)
    return config


async def serve_api(app: Any, settings: Settings) -> None:
    plain = StartedServer(_config(app, settings.http.host, settings.http.port))
    secure_config = https_config(app, settings)
    if secure_config is None:
        await plain.serve()
        return
    secure = uvicorn.Server(secure_config)
    plain_task = asyncio.create_task(plain.serve())
    started = asyncio.create_task(plain.started_event.wait())
    await asyncio.wait({plain_task, started}, return_when=asyncio.FIRST_COMPLETED)
    started.cancel()
    if plain_task.done() or not plain.started:
        await plain_task  # the lifespan failed: no HTTPS
        return
    # Each server catches SIGINT/SIGTERM while it runs and re-raises the signal when it has
    # stopped: HTTPS (installed last) stops first, then HTTP with the lifespan's shutdown.
    secure_task = asyncio.create_task(secure.serve())
    log.info(
        "HTTPS listening on https://%s:%d",
        secure_config.host,
        secure_config.port,
    )
    await asyncio.wait({plain_task, secure_task}, return_when=asyncio.FIRST_COMPLETED)
    secure.should_exit = True
    await secure_task
    plain.should_exit = True
    await plain_task
