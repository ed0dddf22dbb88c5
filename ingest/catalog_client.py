"""The gateway's view of the read model: it asks the API process, which owns ClickHouse."""

from __future__ import annotations

from typing import Any

import httpx
from pydantic import TypeAdapter

from infra.settings import Settings
from schemas.catalog import CatalogInstance, InstanceQuery

_INSTANCES: TypeAdapter[list[CatalogInstance]] = TypeAdapter(list[CatalogInstance])


def api_base_url(settings: Settings) -> str:
    return f"http://{settings.http.host}:{settings.http.port}"


class CatalogClient:
    """Blocking (pynetdicom handlers run in threads); one pooled HTTP connection per process."""

    def __init__(self, base_url: str, timeout: float = 30.0) -> None:
        self._http = httpx.Client(base_url=base_url, timeout=timeout)

    def instances(self, query: InstanceQuery) -> list[CatalogInstance]:
        """Every stored instance matching `query`, ordered by series then instance number."""
        response = self._http.post("/api/internal/instances", json=query.model_dump())
        response.raise_for_status()
        return _INSTANCES.validate_json(response.content)

    def find(self, level: str, filters: dict[str, str], keys: list[str]) -> list[dict[str, Any]]:
        """C-FIND matches as DICOM JSON datasets; raises httpx errors (4xx: bad identifier)."""
        response = self._http.post(
            "/api/internal/find", json={"level": level, "filters": filters, "return_keys": keys}
        )
        response.raise_for_status()
        matches: list[dict[str, Any]] = response.json()
        return matches

    def close(self) -> None:
        self._http.close()
