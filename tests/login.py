"""Logging in as a client does: the token endpoint (OAuth2 password flow). Shared by the
integration tests and the benchmarks."""

from __future__ import annotations

import httpx

from infra.settings import Settings


def login(base_url: str, username: str, password: str) -> dict[str, str]:
    """Authorization headers for `username`, from POST /api/auth/token."""
    response = httpx.post(
        f"{base_url}/api/auth/token",
        data={"username": username, "password": password},
        timeout=30,
    )
    response.raise_for_status()
    return {"Authorization": f"Bearer {response.json()['access_token']}"}


def login_admin(settings: Settings) -> dict[str, str]:
    """The bootstrap admin's headers, for a stack started with PACS_AUTH__ADMIN_PASSWORD."""
    password = settings.auth.admin_password
    assert password is not None
    base = f"http://{settings.http.host}:{settings.http.port}"
    return login(base, "admin", password.get_secret_value())
