"""Prometheus metrics of our processes (prometheus-client), the gateway's table of open
associations, and the port each non-HTTP process serves them on. No web framework here."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from functools import partial
from typing import Any
from wsgiref.simple_server import make_server

from prometheus_client import Counter, Gauge, Histogram, make_wsgi_app
from prometheus_client.exposition import ThreadingWSGIServer, _SilentHandler

# Calling AE titles are client-chosen strings: as labels they are bounded to the registered
# nodes' titles, every other title counts as OTHER_AE.
OTHER_AE = "other"

ASSOCIATIONS_OPEN = Gauge(
    "pacs_dimse_associations_open", "DIMSE associations open now", ["calling_ae"]
)
ASSOCIATIONS_TOTAL = Counter(
    "pacs_dimse_associations", "DIMSE associations accepted", ["calling_ae"]
)
DIMSE_OPERATIONS = Counter(
    "pacs_dimse_operations", "DIMSE operations answered", ["operation", "status"]
)
CSTORE_SECONDS = Histogram(
    "pacs_dimse_cstore_seconds",
    "Whole C-STORE: request received to status returned (landing and publish included)",
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
)
RECEIVED_BYTES = Counter("pacs_dimse_received_bytes", "Part-10 bytes received by C-STORE")

# The accept path (ingest/accept.py), DIMSE and STOW-RS alike: `via` is "dimse" or "stow".
_FAST = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)
LANDING_SECONDS = Histogram(
    "pacs_ingest_landing_seconds",
    "One instance's bytes made durable in the landing area (fsync'd spool file or S3 PUT)",
    ["via", "landing"],
    buckets=_FAST,
)
PUBLISH_SECONDS = Histogram(
    "pacs_ingest_publish_seconds",
    "One instance's event sent until the broker acknowledged it",
    ["via"],
    buckets=_FAST,
)
ACCEPT_SECONDS = Histogram(
    "pacs_ingest_accept_seconds",
    "One instance through the accept path: header, landing and publish, to its answer",
    ["via", "status"],
    buckets=_FAST,
)

# Worker: from the instance's arrival (its received event's time) to archived and verified.
ARCHIVE_LAG_SECONDS = Histogram(
    "pacs_archive_lag_seconds",
    "Instance received until its archived copy is verified and announced",
    buckets=(0.5, 1, 2, 5, 10, 30, 60, 120, 300, 600, 1800, 3600),
)
# Dispatcher: what waits in the landing area now (read at each scrape).
LANDING_BACKLOG = Gauge(
    "pacs_landing_backlog_instances", "Objects in the landing area, not yet archived", ["landing"]
)


class LandingBacklog:
    """Feeds LANDING_BACKLOG at scrape time, recounting each landing area at most every
    `every` seconds (a listing of the S3 landing bucket is not free)."""

    def __init__(self, areas: dict[str, Callable[[], int]], every: float = 10.0) -> None:
        self._areas = areas
        self._every = every
        self._counted: dict[str, tuple[float, int]] = {}
        self._lock = threading.Lock()
        for mode in areas:
            LANDING_BACKLOG.labels(mode).set_function(partial(self.count, mode))

    def count(self, mode: str) -> int:
        with self._lock:
            at, value = self._counted.get(mode, (float("-inf"), 0))
            if time.monotonic() - at >= self._every:
                value = self._areas[mode]()
                self._counted[mode] = (time.monotonic(), value)
            return value


# API: how far the read models (catalog, worklist, audit) trail the log.
PROJECTOR_LAG_SECONDS = Gauge(
    "pacs_projector_lag_seconds",
    "Age of the newest event the read models have applied, as of its applying; 0 once a "
    "fetch finds nothing new (caught up)",
)
# API: every HTTP request by its route template (bounded), e.g. QIDO /dicom-web/studies.
HTTP_SECONDS = Histogram(
    "pacs_http_request_seconds",
    "HTTP requests answered by the API, by route template and method",
    ["route", "method", "status"],
    buckets=_FAST,
)


def ae_label(calling_ae: str, registered: Callable[[str], bool]) -> str:
    """The calling AE as a label: its title if it is a registered node, else OTHER_AE."""
    title = calling_ae.strip()
    return title if title and registered(title) else OTHER_AE


def status_label(status: int) -> str:
    """A DIMSE status as a bounded label: its class (PS3.7 C), not the 65,536 codes."""
    if status == 0x0000:
        return "success"
    if status in (0xFF00, 0xFF01):
        return "pending"
    if status == 0xFE00:
        return "cancel"
    if status == 0x0001 or (status & 0xF000) == 0xB000:
        return "warning"
    return "failure"


@dataclass
class OpenAssociation:
    """One association the gateway holds open, as `GET /api/associations` shows it."""

    calling_ae: str
    address: str
    since: float
    operations: int = 0
    bytes_received: int = 0
    key: int = field(default=0, repr=False)


class AssociationTable:
    """The open associations of this process, updated from pynetdicom's threads."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._open: dict[int, OpenAssociation] = {}

    def opened(self, key: int, calling_ae: str, address: str) -> None:
        with self._lock:
            self._open[key] = OpenAssociation(calling_ae, address, time.time(), key=key)

    def operation(self, key: int, received: int = 0) -> None:
        with self._lock:
            held = self._open.get(key)
            if held is not None:
                held.operations += 1
                held.bytes_received += received

    def closed(self, key: int) -> OpenAssociation | None:
        with self._lock:
            return self._open.pop(key, None)

    def snapshot(self) -> list[dict[str, Any]]:
        with self._lock:
            rows = [asdict(held) for held in self._open.values()]
        for row in rows:
            del row["key"]
        return sorted(rows, key=lambda row: row["since"])


ASSOCIATIONS = AssociationTable()


def _app(associations: AssociationTable) -> Callable[..., Iterable[bytes]]:
    metrics = make_wsgi_app()

    def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        if environ.get("PATH_INFO") == "/associations":
            body = json.dumps(associations.snapshot()).encode()
            start_response("200 OK", [("Content-Type", "application/json")])
            return [body]
        return metrics(environ, start_response)  # type: ignore[no-any-return]

    return app


def serve_metrics(
    port: int, host: str = "127.0.0.1", associations: AssociationTable = ASSOCIATIONS
) -> ThreadingWSGIServer | None:
    """Serve /metrics (and /associations, JSON) on `host`:`port` in a daemon thread; 0 = off.
    Loopback by default: the numbers name AE titles and addresses."""
    if not port:
        return None
    server = make_server(
        host, port, _app(associations), ThreadingWSGIServer, handler_class=_SilentHandler
    )
    threading.Thread(target=server.serve_forever, name="metrics", daemon=True).start()
    return server


def serve_metrics_from(host: str, first_port: int, count: int) -> ThreadingWSGIServer | None:
    """Serve on the first free port of `first_port` .. `first_port + count - 1` (one per
    process of a kind sharing its settings, e.g. the gateway's); 0 = off."""
    for port in range(first_port, first_port + count) if first_port else ():
        try:
            return serve_metrics(port, host)
        except OSError:
            continue
    if first_port:
        raise OSError(f"no free metrics port in {first_port}..{first_port + count - 1}")
    return None


SECRET_FIELDS = ("password", "key", "secret", "token")
REDACTED = "**********"


def redacted(values: Any) -> Any:
    """Settings as JSON-able values with every secret-looking field (…password, …key,
    …secret, …token) replaced: safe to show to an admin over the API."""
    if isinstance(values, dict):
        return {
            name: (
                REDACTED
                if value is not None and any(s in name.lower() for s in SECRET_FIELDS)
                else redacted(value)
            )
            for name, value in values.items()
        }
    if isinstance(values, list):
        return [redacted(v) for v in values]
    return values
