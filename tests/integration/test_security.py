"""Security on the real platform: the one door over the whole OpenAPI document, the token
flow, users, roles and API keys through the admin API, and the bootstrap admin's password."""

from __future__ import annotations

import re
import stat
from pathlib import Path
from typing import Any

import httpx
import pytest

from infra.settings import AuthSettings
from tests.integration.conftest import Platform, login, platform_settings, running_platform

pytestmark = pytest.mark.integration

PUBLIC = {("GET", "/health/live"), ("GET", "/health/ready"), ("POST", "/api/auth/token")}


def test_every_route_answers_401_without_credentials(platform: Platform) -> None:
    document: dict[str, Any] = platform.get("/openapi.json").json()
    operations = [
        (method.upper(), re.sub(r"\{[^}]+\}", "1.2.3", path))
        for path, item in document["paths"].items()
        for method in item
    ]
    assert len(operations) > 40
    with httpx.Client(base_url=platform.http, timeout=30) as anonymous:
        for method, path in operations:
            status = anonymous.request(method, path).status_code
            assert (status != 401) if (method, path) in PUBLIC else (status == 401), (
                method,
                path,
                status,
            )
        assert anonymous.get("/openapi.json").status_code == 401
        assert anonymous.post("/api/internal/find", json={"level": "STUDY"}).status_code == 401
        ready = anonymous.get("/health/ready")
        assert ready.status_code == 200 and ready.json() == {"ready": True}
    detailed = platform.get("/health/ready").json()
    assert detailed["parts"]["security"]["ok"]


def test_users_roles_and_api_keys_through_the_admin_api(platform: Platform) -> None:
    with platform.client() as admin:
        created = admin.put(
            "/api/users/dr.jones",
            json={"password": "a radiologist's password", "roles": ["radiologist"]},
        )
        assert created.status_code == 200, created.text
        assert "password_hash" not in created.json()
        too_short = admin.put("/api/users/x", json={"password": "short", "roles": []})
        assert too_short.status_code == 422
    rad = login(platform.http, "dr.jones", "a radiologist's password")
    with httpx.Client(base_url=platform.http, headers=rad, timeout=30) as client:
        assert client.get("/dicom-web/studies", params={"limit": 1}).status_code == 200
        assert client.get("/api/auth/me").json()["roles"] == ["radiologist"]
        refused = client.get("/api/admin/projections")
        assert refused.status_code == 403 and "admin" in refused.json()["detail"]
        assert client.get("/api/audit/events").status_code == 403
    with pytest.raises(httpx.HTTPStatusError):
        login(platform.http, "dr.jones", "a wrong password")

    with platform.client() as admin:
        issued = admin.post("/api/api-keys", json={"name": "RIS", "roles": ["integration"]})
        assert issued.status_code == 201, issued.text
        key, key_id = issued.json()["api_key"], issued.json()["key_id"]
        listed = admin.get("/api/api-keys").json()
        assert [k["key_id"] for k in listed if k["key_id"] == key_id] == [key_id]
        assert all("secret_sha256" not in k and "api_key" not in k for k in listed)
    for header in ({"X-API-Key": key}, {"Authorization": f"Bearer {key}"}):
        answer = httpx.get(f"{platform.http}/api/auth/me", headers=header, timeout=30)
        assert answer.json()["name"] == f"api-key:{key_id}"
    with platform.client() as admin:
        assert admin.delete(f"/api/api-keys/{key_id}").status_code == 204
        assert (
            admin.put("/api/users/dr.jones", json={"roles": [], "disabled": True}).status_code
            == 200
        )
    revoked = httpx.get(f"{platform.http}/api/auth/me", headers={"X-API-Key": key}, timeout=30)
    assert revoked.status_code == 401 and "revoked" in revoked.json()["detail"]
    disabled = httpx.get(f"{platform.http}/api/auth/me", headers=rad, timeout=30)
    assert disabled.status_code == 401  # the token it had stopped working with the user

    trail = platform.get("/api/audit/events", params={"type": "pacs.user.saved"}).json()
    saved = [e for e in trail if e["sop_instance_uid"] == "user:dr.jones"]
    assert saved and all(e["client"] == "admin" for e in saved)
    assert all("argon2" not in str(e) for e in trail)  # no hash in the audit trail


async def test_generated_admin_password_then_one_from_the_environment(
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    data_dir = tmp_path_factory.mktemp("bootstrap")
    settings = platform_settings(data_dir, base=22000)
    settings.auth = AuthSettings()  # no PACS_AUTH__ADMIN_PASSWORD: one is generated
    async with running_platform(settings) as node:
        generated = data_dir / "secrets" / "admin-password"
        assert stat.S_IMODE(generated.stat().st_mode) == 0o600
        first = generated.read_text().strip()
        assert len(first) >= 32
        assert node.get("/api/auth/me").json()["name"] == "admin"
    settings.auth = AuthSettings(admin_password="a password chosen by the administrator")
    async with running_platform(settings) as node:
        assert node.get("/api/auth/me").json()["roles"] == ["admin"]
        with pytest.raises(httpx.HTTPStatusError):
            login(node.http, "admin", first)
    assert Path(generated).read_text().strip() == first  # the file is left as it was
