"""The one read-model guard: every route that needs a read model this process does not hold
answers the same way (503 with the same reason), whatever the route."""

from __future__ import annotations

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from api.dicomweb import metadata, qido, wado
from api.rest import admin, audit, changes, internal, worklist
from tests.unit.api.auth import ADMIN, stand_in_services

# (method, path, body) of routes backed by each read model.
ROUTES = [
    ("GET", "/dicom-web/studies", None),
    ("GET", "/dicom-web/studies/1.2.3/metadata", None),
    ("GET", "/dicom-web/studies/1.2.3", None),
    ("POST", "/api/internal/find", {"level": "STUDY"}),
    ("POST", "/api/internal/instances", {}),
    ("GET", "/api/worklist", None),
    ("GET", "/api/worklist/some-item", None),
    ("GET", "/api/audit/events", None),
    ("GET", "/api/changes", None),
    ("GET", "/api/admin/projections", None),
    ("POST", "/api/admin/projections/rebuild", None),
]


@pytest.fixture(scope="module")
def client() -> TestClient:
    app = FastAPI()
    for module in (qido, metadata, wado, internal, worklist, audit, changes, admin):
        app.include_router(module.router)
    # A process that owns no read model: the gateway-side shape of the API.
    app.state.services = stand_in_services()
    return TestClient(app, headers=ADMIN)


@pytest.mark.parametrize(("method", "path", "body"), ROUTES)
def test_missing_read_model_is_one_answer(
    client: TestClient, method: str, path: str, body: object
) -> None:
    response = client.request(method, path, json=body)
    assert response.status_code == 503, response.text
    detail = response.json()["detail"]
    assert detail.startswith("the ") and detail.endswith(
        "read model is not available in this API process"
    )
