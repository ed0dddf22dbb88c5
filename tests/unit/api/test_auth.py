"""Logging in over HTTP: the token endpoint, API keys, the login page's cookie and CSRF."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from api.app import create_app
from api.identity import Authenticator
from infra.auth import api_keys
from infra.auth.passwords import hash_password
from infra.auth.tokens import TokenIssuer
from infra.clickhouse import ClickHouse
from infra.readmodels.base import LogRecord
from infra.readmodels.security import SecurityProjection
from infra.settings import Settings
from schemas.events import ApiKeyCreated, ApiKeyRevoked, Event, UserDeleted, UserSaved
from schemas.security import ApiKey, User
from tests.unit.api.auth import stand_in_services

PASSWORD = "a long enough password"


def saved(name: str, roles: list[str], disabled: bool = False) -> UserSaved:
    user = User(
        username=name, password_hash=hash_password(PASSWORD), roles=roles, disabled=disabled
    )
    return UserSaved(user=user, actor="test")


class Node:
    def __init__(self, tmp_path: Path) -> None:
        self.clickhouse = ClickHouse(f"chdb://{tmp_path / 'ch'}")
        self.security = SecurityProjection(self.clickhouse)
        self.security.ensure_tables()
        self.offset = 0
        app = create_app(Settings(viewer_dir=tmp_path / "no-viewer"), run_projectors=False)
        app.state.services = stand_in_services(
            settings=Settings(),
            authenticator=Authenticator(TokenIssuer(b"k" * 32, 600), self.security),
            security=self.security,
        )
        self.client = TestClient(app, raise_server_exceptions=False)

    def apply(self, *events: Event) -> None:
        records = [LogRecord(0, self.offset + n, e, b"") for n, e in enumerate(events)]
        self.offset += len(events)
        self.security.apply(records)

    def token(self, username: str, password: str = PASSWORD) -> str:
        answer = self.client.post(
            "/api/auth/token", data={"username": username, "password": password}
        )
        assert answer.status_code == 200, answer.text
        return str(answer.json()["access_token"])

    def me(self, **headers: str) -> tuple[int, dict[str, object]]:
        answer = self.client.get("/api/auth/me", headers=headers)
        return answer.status_code, answer.json()


@pytest.fixture
def node(tmp_path: Path) -> Iterator[Node]:
    node = Node(tmp_path)
    node.apply(
        saved("admin", ["admin"]), saved("rad", ["radiologist"]), saved("gone", ["admin"], True)
    )
    yield node
    node.clickhouse.close()


def test_password_flow_gives_a_bearer_token(node: Node) -> None:
    answer = node.client.post("/api/auth/token", data={"username": "rad", "password": PASSWORD})
    body = answer.json()
    assert answer.status_code == 200
    assert body["token_type"] == "bearer" and body["expires_in"] == 3600
    status, me = node.me(Authorization=f"Bearer {body['access_token']}")
    assert status == 200 and me["name"] == "rad" and me["roles"] == ["radiologist"]
    assert "studies:read" in me["permissions"]  # type: ignore[operator]


@pytest.mark.parametrize(
    ("username", "password"), [("rad", "wrong"), ("nobody", PASSWORD), ("gone", PASSWORD)]
)
def test_wrong_unknown_or_disabled_gets_401(node: Node, username: str, password: str) -> None:
    answer = node.client.post("/api/auth/token", data={"username": username, "password": password})
    assert answer.status_code == 401
    assert answer.headers["www-authenticate"] == "Bearer"


def test_a_token_stops_working_when_its_user_is_disabled_or_deleted(node: Node) -> None:
    token = node.token("rad")
    node.apply(saved("rad", ["radiologist", "technologist"]))
    status, me = node.me(Authorization=f"Bearer {token}")
    assert me["roles"] == ["radiologist", "technologist"]  # today's roles, not the token's
    node.apply(UserDeleted(username="rad", actor="test"))
    status, me = node.me(Authorization=f"Bearer {token}")
    assert status == 401 and "deleted" in str(me["detail"])


def test_api_keys_by_either_header_until_revoked_or_expired(node: Node) -> None:
    key_id, key, digest = api_keys.new_api_key()
    node.apply(
        ApiKeyCreated(
            key=ApiKey(
                key_id=key_id,
                name="ris",
                owner="admin",
                secret_sha256=digest,
                roles=["integration"],
            ),
            actor="admin",
        )
    )
    assert node.me(Authorization=f"Bearer {key}") == (
        200,
        {
            "name": f"api-key:{key_id}",
            "roles": ["integration"],
            "permissions": ["studies:read", "studies:store", "worklist:read"],
            "via": "api-key",
        },
    )
    assert node.me(**{"X-API-Key": key})[0] == 200
    assert node.me(**{"X-API-Key": key[:-1] + "x"})[0] == 401
    node.apply(ApiKeyRevoked(key_id=key_id, actor="admin"))
    status, body = node.me(**{"X-API-Key": key})
    assert status == 401 and "revoked" in str(body["detail"])
    old_id, old_key, old_digest = api_keys.new_api_key()
    expired = ApiKey(
        key_id=old_id,
        name="old",
        owner="admin",
        secret_sha256=old_digest,
        roles=["admin"],
        expires_at=datetime.now(UTC) - timedelta(days=1),
    )
    node.apply(ApiKeyCreated(key=expired, actor="admin"))
    assert node.me(**{"X-API-Key": old_key})[0] == 401


def test_login_page_sets_a_strict_httponly_session_and_csrf_guards_writes(node: Node) -> None:
    page = node.client.get("/login?next=/viewer/studies")
    assert page.status_code == 200 and 'name="password"' in page.text
    bad = node.client.post("/login", data={"username": "admin", "password": "nope"})
    assert bad.status_code == 401 and "Incorrect" in bad.text
    answer = node.client.post(
        "/login",
        data={"username": "admin", "password": PASSWORD, "next": "/docs"},
        follow_redirects=False,
    )
    assert answer.status_code == 303 and answer.headers["location"] == "/docs"
    cookies = answer.headers.get_list("set-cookie")
    session = next(c for c in cookies if c.startswith("pacs_session="))
    assert "HttpOnly" in session and "SameSite=strict" in session
    csrf = node.client.cookies["pacs_csrf"]
    assert node.me()[0] == 200  # the cookie authenticates reads
    write = node.client.post("/api/admin/projections/rebuild")
    assert write.status_code == 401 and "X-CSRF-Token" in write.json()["detail"]
    write = node.client.post("/api/admin/projections/rebuild", headers={"X-CSRF-Token": csrf})
    assert write.status_code == 503  # past the door; no projector in this process


def test_login_never_redirects_to_another_site(node: Node) -> None:
    for target in ("//evil.example/x", "https://evil.example", "/\\evil.example"):
        answer = node.client.post(
            "/login",
            data={"username": "admin", "password": PASSWORD, "next": target},
            follow_redirects=False,
        )
        assert answer.headers["location"] == "/viewer", target
