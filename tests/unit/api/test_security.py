"""The one door: every route in the OpenAPI document answers 401 without credentials and 403
to a caller whose roles lack its permission; the public ones answer anyone."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient

from api.app import create_app
from api.identity import Authenticator
from infra.auth.tokens import TokenIssuer
from infra.settings import Settings
from tests.unit.api.auth import stand_in_services

PUBLIC = {("GET", "/health/live"), ("GET", "/health/ready"), ("POST", "/api/auth/token")}
# Routes any authenticated caller may use, whatever their roles.
ANY_CALLER = {("GET", "/api/auth/me")}
ISSUER = TokenIssuer(b"k" * 32, 600)


def token(*roles: str) -> dict[str, str]:
    access, _ = ISSUER.issue("someone", set(roles))
    return {"Authorization": f"Bearer {access}"}


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    app = create_app(
        Settings(viewer_dir=tmp_path_factory.mktemp("no-viewer")), run_projectors=False
    )
    # No servers: a route that gets past the door fails further on, which is not a 401/403.
    app.state.services = stand_in_services(authenticator=Authenticator(ISSUER, None))
    # Not entered as a context manager: that would run the lifespan (real servers).
    yield TestClient(app, raise_server_exceptions=False)


def operations(client: TestClient) -> list[tuple[str, str]]:
    document: dict[str, Any] = client.get("/openapi.json", headers=token("admin")).json()
    found = [
        (method.upper(), re.sub(r"\{[^}]+\}", "1.2.3", path))
        for path, item in document["paths"].items()
        for method in item
    ]
    assert len(found) > 40  # the whole API, not a stub
    return found


def test_the_openapi_document_itself_needs_credentials(client: TestClient) -> None:
    assert client.get("/openapi.json").status_code == 401
    docs = client.get("/docs", follow_redirects=False)
    assert docs.status_code == 303 and docs.headers["location"] == "/login?next=/docs"


def test_every_route_but_the_public_ones_answers_401_without_credentials(
    client: TestClient,
) -> None:
    for method, path in operations(client):
        status = client.request(method, path).status_code
        if (method, path) in PUBLIC:
            assert status != 401, (method, path)
        else:
            assert status == 401, (method, path, status)


# What a researcher may use: de-identified results, and reads of studies (which its scope
# narrows to de-identified ones: tests/integration/test_scoping.py).
RESEARCHER_MAY = {
    ("GET", "/api/deidentify/1.2.3"),
    ("GET", "/api/deidentify/1.2.3/zip"),
    ("GET", "/api/studies/1.2.3/storage"),  # a study read, like WADO
}


def researcher_may(method: str, path: str) -> bool:
    reads = method == "GET" and path.startswith(("/dicom-web/", "/wado", "/api/changes"))
    return reads or (method, path) in RESEARCHER_MAY


def test_a_role_without_the_permission_gets_403(client: TestClient) -> None:
    # The researcher role holds no permission beyond (scoped) reads; the auditor none on
    # studies or de-identified results.
    for method, path in operations(client):
        if (method, path) in PUBLIC:
            continue
        status = client.request(method, path, headers=token("researcher")).status_code
        if (method, path) in ANY_CALLER:
            assert status == 200, (method, path, status)
        elif researcher_may(method, path):
            assert status not in (401, 403), (method, path, status)
            assert client.request(method, path, headers=token("auditor")).status_code == 403
        else:
            assert status == 403, (method, path, status)


def test_only_admin_reads_a_reidentification_map(client: TestClient) -> None:
    path = f"/api/deidentify/{'0' * 32}/map"
    for role in ("radiologist", "researcher", "auditor", "integration", "service"):
        assert client.get(path, headers=token(role)).status_code == 403, role
    assert client.get(path, headers=token("admin")).status_code not in (401, 403)


def test_admin_gets_past_the_door_everywhere(client: TestClient) -> None:
    for method, path in operations(client):
        status = client.request(method, path, headers=token("admin")).status_code
        assert status not in (401, 403), (method, path, status)


def test_internal_routes_take_a_service_credential(client: TestClient) -> None:
    body = {"level": "STUDY"}
    assert client.post("/api/internal/find", json=body).status_code == 401
    assert (
        client.post("/api/internal/find", json=body, headers=token("radiologist")).status_code
        == 403
    )
    service, _ = ISSUER.issue("service:gateway", {"service"}, kind="service")
    answer = client.post(
        "/api/internal/find", json=body, headers={"Authorization": f"Bearer {service}"}
    )
    assert answer.status_code == 503  # past the door; this process holds no catalog


def test_bad_credentials_are_refused_with_the_reason(client: TestClient) -> None:
    expired = TokenIssuer(b"k" * 32, 600)
    stale, _ = expired.issue("someone", {"admin"}, ttl_seconds=-120)
    answer = client.get("/dicom-web/studies", headers={"Authorization": f"Bearer {stale}"})
    assert answer.status_code == 401 and "expired" in answer.json()["detail"]
    forged, _ = TokenIssuer(b"x" * 32, 600).issue("mallory", {"admin"})
    answer = client.get("/dicom-web/studies", headers={"Authorization": f"Bearer {forged}"})
    assert answer.status_code == 401 and "not valid" in answer.json()["detail"]
    basic = client.get("/dicom-web/studies", headers={"Authorization": "Basic YTpi"})
    assert basic.status_code == 401 and "Bearer" in basic.json()["detail"]
    health = client.get("/health/ready")
    assert set(health.json()) == {"ready"}  # no internal detail without credentials
